"""aiops.mlstack.jwt_token as Ansible runs it, through playbooks/token.yml.

A list audience must reach the token as a JSON list (it once became the string
"['chat', 'reasoning']", which every unit refused with 401); the token is printed to the
playbook's standard output and never written into the evidence bundle.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt
import pytest
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


def run_token_playbook(secrets: Path, *extra: str) -> tuple[str, Path]:
    bundles = secrets.parent / "bundles"
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "MLSTACK_EVIDENCE_DIR": str(bundles)}
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
