# kiln_add_plugin(NAME SOURCES src... [LIBRARIES lib...] [OUTPUT_DIRECTORY dir] [NO_INSTALL])
#
# Builds a kiln plugin: a MODULE library `NAME.so` compiled with hidden
# visibility whose only exported symbol is kiln_plugin_entry, linked against
# the plugin API headers (never against the host).
set(KILN_PLUGIN_EXPORTS_FILE ${CMAKE_CURRENT_LIST_DIR}/kiln_plugin.exports)

function(kiln_add_plugin name)
  cmake_parse_arguments(ARG "NO_INSTALL" "OUTPUT_DIRECTORY" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "kiln_add_plugin(${name}): SOURCES is required")
  endif()
  if(NOT ARG_OUTPUT_DIRECTORY)
    if(DEFINED KILN_PLUGIN_OUTPUT_DIR)
      set(ARG_OUTPUT_DIRECTORY ${KILN_PLUGIN_OUTPUT_DIR})
    else()
      set(ARG_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
    endif()
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE kiln::plugin_api ${ARG_LIBRARIES})
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIRECTORY})
  target_link_options(${name} PRIVATE "LINKER:--version-script=${KILN_PLUGIN_EXPORTS_FILE}")
  set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS ${KILN_PLUGIN_EXPORTS_FILE})
  if(COMMAND kiln_set_warnings)
    kiln_set_warnings(${name})
  endif()
  if(NOT ARG_NO_INSTALL)
    install(TARGETS ${name} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/kiln/plugins)
  endif()
endfunction()
