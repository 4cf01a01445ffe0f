"""The plugin families Tiercel ships: Kestra's plugins that a local machine can run for real.

Each family registers its task types through the `tiercel.tasks` entry point group (pyproject.toml),
exactly as a third-party package does, and imports only the plugin API (tiercel.engine.plugin): the
families are the plugin API's first users. Each is an optional extra of the distribution
(`pip install 'tiercel[compress]'`, `tiercel[all]`).
"""
