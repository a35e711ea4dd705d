// Under AddressSanitizer, LeakSanitizer's stop-the-world tracer can crash at
// exit ("Tracer caught signal 11") while LibTorch's thread pool is still
// alive, failing a test that passed. LibTorch is not instrumented anyway, so
// leak checking is turned off for this binary only; ASan's other checks stay.
// ASAN_OPTIONS from the environment still applies on top of these defaults.
extern "C" const char* __asan_default_options();
extern "C" const char* __asan_default_options() {
  return "detect_leaks=0";
}
