# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Docker engine reference as one string: the URL, and for ``tcp://`` its TLS client files.

A Docker host's ``mlstack_docker_tls`` (``ca_path``, ``cert_path``, ``key_path``, ``verify``)
travels in the engine URL's query, the way a libpq URI carries ``sslrootcert``: every task and
module that takes ``docker_host`` then reaches a TLS engine without a second option to thread
through. The names are the docker CLI's own flags (``--tlscacert``, ``--tlscert``, ``--tlskey``,
``--tlsverify``). The files are read where the module runs: the Docker host's Ansible connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# mlstack_docker_tls key -> the engine URL's query parameter.
TLS_FILES = {"ca_path": "tlscacert", "cert_path": "tlscert", "key_path": "tlskey"}
TLS_KEYS = (*TLS_FILES, "verify")
_FALSE = ("0", "false", "no", "off")


class EngineUrlError(ValueError):
    """An engine URL or TLS setting that cannot reach an engine; the message names the field and the fix."""


def _verify(value: Any) -> bool:
    return str(value).strip().lower() not in _FALSE


def tls_errors(tls: Any, url: str) -> list[str]:
    """What is wrong with ``mlstack_docker_tls`` for the engine ``url``; empty when nothing."""
    if tls in (None, "", {}):
        return []
    if not isinstance(tls, Mapping):
        return [f"mlstack_docker_tls must be a mapping with {', '.join(TLS_KEYS)}, got {type(tls).__name__}"]
    errors = []
    if urlsplit(url).scheme != "tcp":
        errors.append(f"mlstack_docker_tls is set but mlstack_docker_url={url!r} is not a tcp:// engine: remove "
                      "mlstack_docker_tls, or point mlstack_docker_url at the engine's TLS port (tcp://host:2376)")
    unknown = sorted(str(k) for k in tls if k not in TLS_KEYS)
    if unknown:
        errors.append(f"mlstack_docker_tls has unknown keys {', '.join(unknown)}: use {', '.join(TLS_KEYS)}")
    for key in TLS_FILES:
        path = tls.get(key)
        if not isinstance(path, str) or not path.startswith("/"):
            errors.append(f"mlstack_docker_tls.{key} must be an absolute path on the Docker host's Ansible "
                          f"connection (where the tasks run), got {path!r}: set it to the PEM file (e.g. "
                          f"/etc/mlstack/docker-tls/{key.split('_')[0]}.pem)")
    return errors


def with_tls(url: str, tls: Mapping[str, Any] | None) -> str:
    """``url`` with ``tls`` (``mlstack_docker_tls``) in its query; ``url`` itself when there is none."""
    if not tls:
        return url
    if not isinstance(tls, Mapping):
        raise EngineUrlError(f"mlstack_docker_tls must be a mapping with {', '.join(TLS_KEYS)}, "
                             f"got {type(tls).__name__}")
    query = [(param, str(tls[key])) for key, param in TLS_FILES.items() if tls.get(key)]
    if "verify" in tls and not _verify(tls["verify"]):
        query.append(("tlsverify", "0"))
    split = urlsplit(url)
    joined = "&".join(part for part in (split.query, urlencode(query)) if part)
    return urlunsplit(split._replace(query=joined))


def client_args(url: str) -> tuple[str, dict[str, Any] | None]:
    """The SDK's ``base_url`` and TLS arguments (``ca_cert``, ``client_cert``, ``verify``) or None."""
    split = urlsplit(url)
    if not split.query:
        return url, None
    params = dict(parse_qsl(split.query, keep_blank_values=True))
    if split.scheme != "tcp":
        raise EngineUrlError(f"engine URL {split.scheme}://{split.netloc}{split.path} has a query "
                             f"({', '.join(sorted(params))}); only a tcp:// engine takes TLS files: remove them")
    unknown = sorted(set(params) - {*TLS_FILES.values(), "tlsverify"})
    if unknown:
        raise EngineUrlError(f"engine URL tcp://{split.netloc}: unknown query parameters {', '.join(unknown)}: "
                             f"use {', '.join((*TLS_FILES.values(), 'tlsverify'))} (mlstack_docker_tls)")
    missing = [param for param in TLS_FILES.values() if not params.get(param)]
    if missing:
        raise EngineUrlError(f"engine URL tcp://{split.netloc} lacks {', '.join(missing)}: a TLS engine needs the "
                             "CA, the client certificate and its key (mlstack_docker_tls ca_path, cert_path, "
                             "key_path)")
    base = urlunsplit(split._replace(query=""))
    return base, {"ca_cert": params["tlscacert"], "client_cert": (params["tlscert"], params["tlskey"]),
                  "verify": _verify(params.get("tlsverify", "1"))}


def community_docker_options(url: str) -> dict[str, Any]:
    """The engine as community.docker's modules take it: ``docker_host`` plus, for TLS, its own options."""
    base, tls = client_args(url)
    if tls is None:
        return {"docker_host": base}
    cert, key = tls["client_cert"]
    return {"docker_host": base, "tls": True, "validate_certs": tls["verify"], "ca_path": tls["ca_cert"],
            "client_cert": cert, "client_key": key}


def community_docker_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """A community.docker module's arguments with a ``docker_host`` that carries TLS files spelled out."""
    url = args.get("docker_host")
    if not isinstance(url, str) or "?" not in url:
        return dict(args)
    return {**args, **community_docker_options(url)}
