// The seccomp profile of every container step: see container_bundle.hpp and
// docs/containers.md ("Isolation").
#include <kiln/host/container_bundle.hpp>

#include <cerrno>
#include <cstdint>

namespace kiln::host {

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kLeakSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kLeakSanitizer = true;
#else
constexpr bool kLeakSanitizer = false;
#endif
#else
constexpr bool kLeakSanitizer = false;
#endif

Json deny(const std::vector<std::string>& names, int error) {
  return {{"names", names}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", error}};
}

// clone(2) whose flags ask for a new namespace of `flag`'s kind (the flags are
// its first argument on x86-64, arm64 and the other architectures kiln builds on).
Json deny_clone_with(uint64_t flag) {
  Json rule = deny({"clone"}, EPERM);
  rule["args"] = Json::array({{{"index", 0}, {"value", flag}, {"valueTwo", flag}, {"op", "SCMP_CMP_MASKED_EQ"}}});
  return rule;
}

}  // namespace

Json default_seccomp_profile() {
  // What no step needs: changing mounts, namespaces, the kernel (modules,
  // kexec, reboot, swap, clocks, quotas, accounting), keyrings, BPF, tracing
  // and reading other processes' memory, performance counters, userfaultfd,
  // io_uring, and opening files by handle. Unknown names on this
  // architecture (runc skips them) cost nothing.
  std::vector<std::string> names{
      // mounts and namespaces
      "mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
      "fspick", "mount_setattr", "unshare", "setns",
      // the kernel and the machine
      "init_module", "finit_module", "delete_module", "create_module", "query_module", "get_kernel_syms", "kexec_load",
      "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "settimeofday", "stime",
      "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "syslog", "ioperm", "iopl",
      "vhangup", "lookup_dcookie", "nfsservctl", "uselib", "ustat", "sysfs", "_sysctl", "vm86", "vm86old",
      // keyrings, BPF, performance counters, page-fault handling, io_uring
      "add_key", "request_key", "keyctl", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
      "io_uring_register",
      // other processes' memory, file handles
      "process_vm_readv", "process_vm_writev", "kcmp", "name_to_handle_at", "open_by_handle_at"};
  // LeakSanitizer stops the world by ptrace-attaching to its own threads: a
  // sanitizer build keeps ptrace (a step can still see only its own pids).
  if (!kLeakSanitizer) names.push_back("ptrace");
  Json rules = Json::array({deny(names, EPERM)});
  // clone3 passes its flags in memory a filter cannot read: "not
  // implemented" makes the C library fall back to clone, filtered below.
  rules.push_back(deny({"clone3"}, ENOSYS));
  for (const uint64_t flag :
       {0x00020000ULL /* CLONE_NEWNS */, 0x02000000ULL /* CLONE_NEWCGROUP */, 0x04000000ULL /* CLONE_NEWUTS */,
        0x08000000ULL /* CLONE_NEWIPC */, 0x10000000ULL /* CLONE_NEWUSER */, 0x20000000ULL /* CLONE_NEWPID */,
        0x40000000ULL /* CLONE_NEWNET */})
    rules.push_back(deny_clone_with(flag));
  return {{"defaultAction", "SCMP_ACT_ALLOW"}, {"syscalls", rules}};
}

}  // namespace kiln::host
