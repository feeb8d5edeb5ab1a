#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image
short_description: Make one unit's image present (pull, offline build, or auto) and return its reference
version_added: 0.2.0
description:
  - C(pull) pulls O(pull_ref) when it is absent. C(build) builds the recipe O(recipe) on O(base_image),
    tagged C(mlstack/<recipe>:<content hash>) (the first 12 hex digits of a SHA-256 over the recipe's files,
    as the P(aiops.mlstack.tree_hash#filter) filter computes it), only when no image has that tag.
    C(auto) pulls, and builds when the pull fails or when no O(pull_ref) is given.
  - Units that share a recipe build it once. The first unit claims the build with a lock directory in
    O(build_dir) on the Docker host; the others print one line and wait for its image (up to O(build_timeout)
    seconds), and take the build over when the claim is given back without an image. A build killed mid-way
    leaves its lock directory in O(build_dir) (for example C(.mlstack_redis_505564bee3c4.building));
    remove it to free the build.
  - A build copies the recipe to C(<build_dir>/<recipe>/) on the Docker host, fetches a C(pom.xml)'s runtime
    dependencies into C(lib/) with the host's Maven, adds the host's CA bundle O(host_ca) as C(host-ca.crt) (empty
    when absent) and builds with the legacy builder API (no buildx) and the build argument C(BASE_IMAGE).
  - This is an action plugin. The recipe is hashed on the controller; whether the image is present is asked
    from the controller's process when the connection is local, and with M(community.docker.docker_image_info)
    on the target otherwise; pulls, the lock and builds run as modules on the target.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
  - aiops.mlstack.docker
attributes:
  check_mode:
    support: full
    details: >-
      Looks for the image and reports the pull or build it would do (changed), without pulling, building
      or waiting.
  diff_mode:
    support: none
options:
  source:
    description: Where the image comes from.
    type: str
    choices: [pull, build, auto]
    default: auto
  pull_ref:
    description: Registry reference with a pinned tag (for C(pull) and C(auto)).
    type: str
    default: ""
  recipe:
    description: Recipe directory name under O(recipes_dir) (for C(build) and C(auto)).
    type: str
    default: ""
  recipes_dir:
    description: Directory of the build recipes on the controller; the default is the collection's C(images/).
    type: path
  base_image:
    description: Base image the recipe builds on (the build argument C(BASE_IMAGE)).
    type: str
    default: local/debian:bookworm
  build_dir:
    description: Directory on the Docker host where build contexts are assembled and build locks taken.
    type: path
    default: /var/lib/mlstack/build
  host_ca:
    description: CA bundle of the Docker host put into build contexts as C(host-ca.crt).
    type: path
    default: /etc/ssl/certs/ca-certificates.crt
  build_timeout:
    description: >-
      Seconds a build may take (the llm recipe compiles llama.cpp), and that a unit waits for another's build.
    type: int
    default: 1800
"""

EXAMPLES = r"""
- name: Supply the Redis image
  aiops.mlstack.image:
    source: auto
    pull_ref: docker.io/library/redis:7.2.5-bookworm
    recipe: redis
  register: __redis_image

- name: Run the container on it
  aiops.mlstack.container:
    name: mlstack-redis
    unit: redis
    spec:
      image: "{{ __redis_image.ref }}"
"""

RETURN = r"""
ref:
  description: The image reference the unit runs (O(pull_ref), or the recipe's content tag when built).
  returned: success
  type: str
  sample: mlstack/redis:505564bee3c4
image_id:
  description: The image's id; null in check mode when the image would be pulled or built.
  returned: success
  type: str
  sample: sha256:4faebb278af1...
operation:
  description: >-
    What was done: C(none) (present), C(pull), C(build), or C(wait) (another unit built it). In check
    mode C(pull) or C(build) is what would be done.
  returned: success
  type: str
  sample: none
"""
