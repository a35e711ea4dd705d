# kiln_set_warnings(TARGET): the project's warning level, fatal when KILN_WERROR.
function(kiln_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic $<$<CXX_COMPILER_ID:GNU>:-Wshadow=compatible-local> $<$<COMPILE_LANGUAGE:CXX>:-Wnon-virtual-dtor>
                                           $<$<BOOL:${KILN_WERROR}>:-Werror>)
endfunction()
