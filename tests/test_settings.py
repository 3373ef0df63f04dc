"""Settings: the API key travels only over TLS, or plain HTTP on loopback."""

import pytest

from klaviyo_etl.errors import ConfigError
from klaviyo_etl.settings import Settings, key_travels_safely

KEY = "pk_test_abcd1234"


@pytest.mark.parametrize(
    "url",
    [
        "https://a.klaviyo.com",
        "http://127.0.0.1:8080",
        "http://127.3.4.5",
        "http://localhost:9",
        "http://[::1]:80",
    ],
)
def test_tls_or_loopback_may_carry_the_key(url):
    assert key_travels_safely(url)
    assert Settings(api_key=KEY, base_url=url).require_api_key() == KEY


@pytest.mark.parametrize("url", ["http://a.klaviyo.com", "http://10.0.0.5:8080", "HTTP://proxy.internal"])
def test_plain_http_elsewhere_is_refused_unless_allowed(url):
    assert not key_travels_safely(url)
    with pytest.raises(ConfigError, match="--allow-insecure"):
        Settings(api_key=KEY, base_url=url).require_api_key()
    assert Settings(api_key=KEY, base_url=url, allow_insecure=True).require_api_key() == KEY
