"""A Docker engine reference as one string: tcp:// carries its TLS client files (module_utils/_engine_url.py)."""

from __future__ import annotations

import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils._engine_url import (
    EngineUrlError,
    client_args,
    community_docker_args,
    tls_errors,
    with_tls,
)

TLS = {"ca_path": "/tls/ca.pem", "cert_path": "/tls/cert.pem", "key_path": "/tls/key.pem"}


def test_tls_files_travel_in_the_query_and_come_back_as_the_sdks_arguments() -> None:
    url = with_tls("tcp://10.0.0.11:2376", TLS)
    assert client_args(url) == ("tcp://10.0.0.11:2376", {
        "ca_cert": "/tls/ca.pem", "client_cert": ("/tls/cert.pem", "/tls/key.pem"), "verify": True})


@pytest.mark.parametrize("verify", [False, "false", "no", 0])
def test_verify_false_is_kept(verify: object) -> None:
    tls = client_args(with_tls("tcp://h:2376", {**TLS, "verify": verify}))[1]
    assert tls is not None and tls["verify"] is False


def test_a_url_without_tls_is_left_alone() -> None:
    for url in ("unix:///var/run/docker.sock", "ssh://ops@gpu1", "tcp://h:2376"):
        assert with_tls(url, None) == url
        assert with_tls(url, {}) == url
        assert client_args(url) == (url, None)


def test_a_path_with_reserved_characters_survives_the_query() -> None:
    odd = {**TLS, "key_path": "/tls/a&b=c?.pem"}
    tls = client_args(with_tls("tcp://h:2376", odd))[1]
    assert tls is not None and tls["client_cert"] == ("/tls/cert.pem", "/tls/a&b=c?.pem")


@pytest.mark.parametrize(("url", "needle"), [
    ("unix:///var/run/docker.sock?tlscacert=/ca.pem", "only a tcp:// engine takes TLS files"),
    ("tcp://h:2376?tlscacert=/ca.pem&tlscert=/c.pem", "lacks tlskey"),
    ("tcp://h:2376?tlscacert=/ca.pem&tlscert=/c.pem&tlskey=/k.pem&cafile=/x", "unknown query parameters cafile"),
])
def test_a_query_that_cannot_reach_an_engine_is_refused(url: str, needle: str) -> None:
    with pytest.raises(EngineUrlError, match=needle):
        client_args(url)


def test_tls_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(EngineUrlError, match="mlstack_docker_tls must be a mapping"):
        with_tls("tcp://h:2376", "/tls")  # type: ignore[arg-type]


def test_tls_errors_name_each_key() -> None:
    assert tls_errors(TLS, "tcp://h:2376") == []
    assert tls_errors(None, "unix:///var/run/docker.sock") == []
    errors = tls_errors({"ca_path": "ca.pem", "verify": True, "extra": 1}, "tcp://h:2376")
    assert [e.split(" ", 1)[0] for e in errors] == [
        "mlstack_docker_tls", "mlstack_docker_tls.ca_path", "mlstack_docker_tls.cert_path",
        "mlstack_docker_tls.key_path"]
    assert "unknown keys extra" in errors[0]


def test_community_docker_gets_the_tls_files_as_its_own_options() -> None:
    url = with_tls("tcp://10.0.0.11:2376", TLS)
    assert community_docker_args({"name": "mlstack-redis", "docker_host": url}) == {
        "name": "mlstack-redis", "docker_host": "tcp://10.0.0.11:2376", "tls": True, "validate_certs": True,
        "ca_path": "/tls/ca.pem", "client_cert": "/tls/cert.pem", "client_key": "/tls/key.pem"}
    # Without TLS the arguments are the task's own.
    plain = {"name": "mlstack-redis", "docker_host": "unix:///var/run/docker.sock"}
    assert community_docker_args(plain) == plain
    assert community_docker_args({"name": "x"}) == {"name": "x"}


def test_the_docker_api_filter_gives_every_option_for_a_task_to_spell_out() -> None:
    from ansible_collections.aiops.mlstack.plugins.filter.engine import docker_api

    assert docker_api("unix:///var/run/docker.sock") == {
        "docker_host": "unix:///var/run/docker.sock", "tls": False, "validate_certs": False, "ca_path": None,
        "client_cert": None, "client_key": None}
    assert docker_api(with_tls("tcp://h:2376", {**TLS, "verify": False}))["validate_certs"] is False
