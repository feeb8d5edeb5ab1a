# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module that reaches a Docker engine through the SDK shares in its documentation."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - Docker engine address (C(unix://), C(ssh://) or C(tcp://)).
      - A C(tcp://) engine run with C(--tlsverify) takes its TLS client files in the URL's query, as
        the resolved unit's C(docker_url) carries a Docker host's C(mlstack_docker_tls) -
        C(tlscacert), C(tlscert), C(tlskey) (absolute paths on the machine the module runs on) and
        C(tlsverify=0) to skip checking the engine's certificate.
    type: str
    default: unix:///var/run/docker.sock
requirements:
  - docker (Python SDK) >= 7.0
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""
