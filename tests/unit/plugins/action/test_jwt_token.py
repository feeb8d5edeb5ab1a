"""aiops.mlstack.jwt_token as Ansible runs it, through playbooks/token.yml.

A list audience must reach the token as a JSON list (it once became the string
"['chat', 'reasoning']", which every unit refused with 401); the token is printed to the
playbook's standard output and never written into the evidence bundle. A signing key kept in
AWX reaches the plugins through the "mlstack secrets" credential's injectors (awx/).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from ansible_collections.aiops.mlstack.plugins.plugin_utils import _jwt

ROOT = Path(__file__).resolve().parents[4]
TOKEN = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("token") / "secrets"
    base.mkdir(mode=0o700)
    _jwt.ensure_current(base)
    return base


def run_token_playbook(secrets: Path, *extra: str, environ: dict[str, str] | None = None) -> tuple[str, Path]:
    bundles = secrets.parent / "bundles"
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "MLSTACK_EVIDENCE_DIR": str(bundles),
           **(environ or {})}
    done = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", "inventories/local",
                           "playbooks/token.yml", "-e", f"mlstack_secrets_dir={secrets}", *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout, bundles


def claims_of(stdout: str, secrets: Path, audience: str) -> dict[str, Any]:
    [token] = TOKEN.findall(stdout)
    public = serialization.load_pem_public_key((secrets / "jwt" / "signing.pub.pem").read_bytes())
    return jwt.decode(token, public, algorithms=["EdDSA"], audience=audience, issuer="mlstack")


@pytest.mark.parametrize("audience", ["chat,reasoning", '["chat", "reasoning"]'])
def test_a_list_audience_is_a_json_list_each_unit_accepts(secrets: Path, audience: str) -> None:
    value = f"mlstack_token_audience={audience}" if "," in audience and "[" not in audience \
        else f'{{"mlstack_token_audience": {audience}}}'
    stdout = run_token_playbook(secrets, "-e", value, "-e", "mlstack_token_scopes='chat:complete reasoning:reason'")[0]
    for unit in ("chat", "reasoning"):
        claims = claims_of(stdout, secrets, unit)
        assert claims["aud"] == ["chat", "reasoning"]
        assert claims["scope"] == "chat:complete reasoning:reason"


def test_one_unit_stays_a_string_and_the_token_stays_out_of_the_evidence(secrets: Path) -> None:
    stdout, bundles = run_token_playbook(secrets, "-e", "mlstack_token_audience=voice-interaction",
                                         "-e", "mlstack_token_scopes=voice:tts", "-e", "mlstack_token_ttl=60")
    claims = claims_of(stdout, secrets, "voice-interaction")
    assert claims["aud"] == "voice-interaction" and claims["exp"] - claims["iat"] == 60
    written = [path for path in bundles.rglob("*") if path.is_file()]
    assert written, "the evidence callback wrote a bundle"
    assert not [path for path in written if TOKEN.search(path.read_text(errors="replace"))]


def inject_as_awx_does(inputs: dict[str, str], files: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The "mlstack secrets" credential type's injectors applied the way AWX applies them: each
    file template rendered with the inputs into a file of the job's, named in ``tower.filename``;
    env and extra_vars rendered with both. Returns (environment, extra vars)."""
    data = yaml.safe_load((ROOT / "awx" / "controller_credential_types.yml").read_text())
    [kind] = data["controller_credential_types"]
    # Rendered once by Ansible when awx_configure.yml creates the type: what AWX stores.
    stored = {k: {n: jinja2.Template(v).render() for n, v in section.items()}
              for k, section in kind["injectors"].items()}
    sandbox = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    filenames = {}
    for name, template in stored["file"].items():
        path = files / name.removeprefix("template.")
        path.write_text(sandbox.from_string(template).render(**inputs))
        path.chmod(0o600)
        filenames[name.removeprefix("template.")] = str(path)
    context = {**inputs, "tower": {"filename": filenames}}
    return ({n: sandbox.from_string(v).render(**context) for n, v in stored["env"].items()},
            {n: sandbox.from_string(v).render(**context) for n, v in stored["extra_vars"].items()})


def test_a_signing_key_kept_in_awx_is_the_one_that_signs(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    kept = _jwt.throwaway_private_pem()
    (tmp_path / "job").mkdir()
    environ, extra_vars = inject_as_awx_does(
        {"secrets_dir": str(secrets), "vault_password": "pw", "jwt_signing_key": kept.decode()}, tmp_path / "job")
    assert extra_vars["mlstack_secrets_dir"] == str(secrets)
    # What phase5's secrets role does first: aiops.mlstack.jwt_key publishes the signing key.
    published = subprocess.run(
        [str(Path(sys.executable).with_name("ansible")), "localhost", "-m", "aiops.mlstack.jwt_key", "-a",
         f"dir={secrets}"], cwd=ROOT, env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), **environ},
        capture_output=True, text=True, timeout=120, check=False)
    assert published.returncode == 0 and "signing key published" in published.stdout, published.stdout[-2000:]
    assert (secrets / "jwt" / "signing.pub.pem").read_text() == _jwt.public_of(kept)
    assert not (secrets / "jwt" / "signing.pem").exists(), "the private key kept in AWX is not written down"
    stdout = run_token_playbook(secrets, "-e", "mlstack_token_audience=chat", environ=environ)[0]
    claims_of(stdout, secrets, "chat")  # verifies against the published key: the kept one signed
    [token] = TOKEN.findall(stdout)
    assert jwt.get_unverified_header(token)["kid"] == _jwt.kid_of(_jwt.public_of(kept))
    # Without the credential, the directory holds no private key to sign with: refused, not a wrong token.
    without = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", "inventories/local",
                              "playbooks/token.yml", "-e", f"mlstack_secrets_dir={secrets}"], cwd=ROOT,
                             env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
                             capture_output=True, text=True, timeout=120, check=False)
    assert without.returncode != 0 and "signing.pem does not exist" in without.stdout
