"""The fixtures every test folder shares, from ``support/fixtures.py``.

``support`` is importable because pyproject.toml puts ``tests`` (and the checkout,
for ``fastwsgi`` itself) on the path: ``[tool.pytest.ini_options] pythonpath``.
"""
pytest_plugins = ["support.fixtures"]
