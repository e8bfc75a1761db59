pytest_plugins = ["tests.plugins.servers", "tests.plugins.smtp", "tests.plugins.interpreted"]
