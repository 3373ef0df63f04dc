"""Code the tests share: sandbox presets and spec schemas, the tiny account, fakes for the
scheduler, the contract cassettes. Fixtures live in tests/conftest.py and the folder conftests."""
