// kiln: the command-line entry point.
#include "cli.hpp"

#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"kiln: run machine-learning pipelines built from plugins", "kiln"};
  app.allow_extras();
  kiln::cli::Commands commands;
  kiln::cli::add_run_commands(app, commands);
  kiln::cli::add_compile_command(app, commands);
  kiln::cli::add_image_commands(app, commands);
  kiln::cli::add_runs_commands(app, commands);
  kiln::cli::add_store_commands(app, commands);
  kiln::cli::add_serve_command(app, commands);
  kiln::cli::add_ui_command(app, commands);
  kiln::cli::add_plugins_commands(app, commands);
  kiln::cli::add_registry_commands(app, commands);
  kiln::cli::add_version_command(app, commands);
  kiln::cli::add_internal_commands(app, commands);
  try {
    app.parse(argc, argv);
    kiln::cli::reject_leftovers(app);
    return commands.run_selected(app);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::cerr << "kiln: " << e.what() << "\nRun 'kiln --help' for usage.\n";
    return kiln::cli::kExitUsage;
  } catch (const kiln::cli::CommandError& e) {
    std::cerr << "kiln: " << e.what() << "\n";
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "kiln: error: " << e.what() << "\n";
    return kiln::cli::kExitFailure;
  }
}
