#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: unit_reconcile
short_description: Reconcile one unit in one task - images, files, secrets, JWT keys, container and health
version_added: 0.2.0
description:
  - Does a unit's whole deploy in one task, in this order, stopping at the first step that fails so
    that nothing after it changes - the serving container stays as it is when an image or a file
    cannot be had.
  - B(Images.) Each image in O(images) is made present on the Docker host as M(aiops.mlstack.image) does
    it - pulled, or built from its recipe and tagged by the recipe's content hash, once per content when
    several units share a recipe. Its reference becomes the container's C(spec.image) (O(images.image)) or
    its port holder's image (O(images.port_holder_image)).
  - B(Files.) The directories in O(directories), the files in O(files), the unit's secret files
    (O(secret_files)) and its JWT public keys (O(jwt_public_key)), each with its owner and mode. A file is
    rewritten only when its content differs, through a temporary file renamed into place, so that a service
    that re-reads it never sees half of it.
  - B(Container.) Then, when given, O(container) as M(aiops.mlstack.container) runs it - dependencies awaited, update
    order, promotion, rollback to the last good container, the health wait - with its evidence record.
  - On a local connection every step runs in the controller's process (no module starts); on any other
    connection all of a unit's files are one M(aiops.mlstack.unit_files) module run on the target (the same
    code), and the container the M(aiops.mlstack.container) module there, with the same results.
  - Secret values never leave the controller's process on a local connection and are never returned; a
    secret file's diff shows that it changed, not its content.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
attributes:
  check_mode:
    support: full
    details: Every step reports what it would change and changes nothing; nothing is pulled or built.
  diff_mode:
    support: full
    details: One entry per changed path, then the container's spec diff.
options:
  unit:
    description: The unit's name, as in its evidence records.
    type: str
    required: true
  docker_host:
    description: The Docker host's engine URL (the resolved unit's C(docker_url)).
    type: str
    default: unix:///var/run/docker.sock
  images:
    description: The images the unit runs, each as M(aiops.mlstack.image) takes it.
    type: dict
    default: {}
    suboptions:
      image:
        description: The unit's own image; its reference becomes the container's C(spec.image).
        type: dict
        suboptions:
          source:
            description: Where the image may come from.
            type: str
            choices: [auto, pull, build]
            default: auto
          pull_ref:
            description: A registry reference.
            type: str
            default: ""
          recipe:
            description: A directory under C(images/), built when nothing can be pulled.
            type: str
            default: ""
      port_holder_image:
        description: The port holder's image (a unit published on the host); same suboptions as O(images.image).
        type: dict
  image_settings:
    description: Where recipes and build contexts are, as M(aiops.mlstack.image)'s options of the same names.
    type: dict
    default: {}
    suboptions:
      recipes_dir:
        description: The recipes' directory on the controller.
        type: path
      base_image:
        description: The base image the recipes build on.
        type: str
      build_dir:
        description: Build contexts on the Docker host.
        type: path
      host_ca:
        description: The Docker host's CA bundle, copied into a build context.
        type: path
      build_timeout:
        description: Seconds a build may take.
        type: int
  directories:
    description: Directories on the Docker host, in order.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: str
        required: true
      owner:
        description: Numeric uid.
        type: raw
        required: true
      group:
        description: Numeric gid; O(directories[].owner) when not given.
        type: raw
      mode:
        description: Octal mode, as a string.
        type: str
        default: "0755"
  files:
    description: Files on the Docker host with a given content.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: str
        required: true
      content:
        description: The file's content.
        type: str
        default: ""
      owner:
        description: Numeric uid.
        type: raw
        required: true
      group:
        description: Numeric gid; O(files[].owner) when not given.
        type: raw
      mode:
        description: Octal mode, as a string.
        type: str
        default: "0400"
      secret:
        description: The content is secret; its diff says only that it changed.
        type: bool
        default: false
  secret_files:
    description:
      - The unit's password files, one per dependency that has a secret (the filter
        P(aiops.mlstack.service_wiring#filter)'s C(secrets)). A secret not yet generated is generated on the
        controller by whichever unit needs it first.
    type: dict
    suboptions:
      dir:
        description: The directory on the Docker host the container mounts as C(/run/secrets).
        type: str
        required: true
      secrets_dir:
        description: The controller's secrets directory, outside the repository.
        type: path
        required: true
      entries:
        description:
          - File name (relative to O(secret_files.dir)) to C([secret unit, secret name]), or
            C([secret unit, secret name, prefix]) for a file that holds a prefix before the value
            (Neo4j's auth file, C(neo4j/<password>)).
        type: dict
        default: {}
      rotation_files:
        description: Files that hold the former and the new value, a line each, while that password rotates.
        type: list
        elements: str
        default: []
      owner:
        description: Numeric uid of the files.
        type: raw
        required: true
      group:
        description: Numeric gid; O(secret_files.owner) when not given.
        type: raw
      mode:
        description: Octal mode.
        type: str
        default: "0400"
  jwt_public_key:
    description:
      - The JWT public keys the service must accept (the signing key, a staged one, retired ones within their
        overlap), as M(aiops.mlstack.jwt_key) publishes them; the signing key pair is made when there is none.
    type: dict
    suboptions:
      dest:
        description: The file on the Docker host.
        type: str
        required: true
      secrets_dir:
        description: The controller's secrets directory.
        type: path
        required: true
      vault_password_file:
        description: The vault password file when the private keys are vault-encrypted.
        type: path
      owner:
        description: Numeric uid.
        type: raw
        required: true
      group:
        description: Numeric gid; O(jwt_public_key.owner) when not given.
        type: raw
      mode:
        description: Octal mode.
        type: str
        default: "0444"
  container:
    description:
      - The options of M(aiops.mlstack.container) but O(unit) and O(docker_host), which this task's are;
        C(spec.image) and C(port_holder_image) come from O(images) when it names them.
      - Without it, only the images and the files - the step of C(rotate_passwords.yml) that hands each
        service its new password files, one task per unit where a C(file) and C(copy) task per path took
        the two cores the serving units need while their databases change passwords.
    type: dict
  prune:
    description:
      - After the container step succeeded, removes the directories under O(prune.dir) that match
        O(prune.pattern) and that none of O(prune.containers) mounts and O(prune.keep) does not name -
        the content-addressed configuration directories of former deploys. The serving container's and
        its kept predecessor's (the one C(rollback.yml) starts) stay.
    type: dict
    suboptions:
      dir:
        description: The unit's runtime directory on the Docker host.
        type: str
        required: true
      pattern:
        description: Glob of the directories' names.
        type: str
        default: config-*
      containers:
        description: The containers whose mounts are kept (the unit's and its C(_previous)).
        type: list
        elements: str
        required: true
      keep:
        description: Directories kept whatever mounts them (this run's configuration directory).
        type: list
        elements: str
        default: []
seealso:
  - module: aiops.mlstack.container
  - module: aiops.mlstack.image
  - module: aiops.mlstack.secret
  - module: aiops.mlstack.jwt_key
notes:
  - This is an action plugin; the container step's module runs on the target only when the connection is not local.
"""

EXAMPLES = r"""
- name: Reconcile the unit - images, secret files, JWT keys, container and its health
  aiops.mlstack.unit_reconcile:
    unit: chat
    images:
      image: {recipe: mlstack-services}
    directories:
      - {path: /var/lib/mlstack/units/chat, owner: 10001, mode: "0755"}
      - {path: /var/lib/mlstack/units/chat/secrets, owner: 10001, mode: "0500"}
    secret_files:
      dir: /var/lib/mlstack/units/chat/secrets
      secrets_dir: ~/.local/share/mlstack/secrets
      entries: {redis_password: [redis, chat]}
      owner: 10001
    jwt_public_key:
      dest: /var/lib/mlstack/units/chat/secrets/jwt_public.pem
      secrets_dir: ~/.local/share/mlstack/secrets
      owner: 10001
    container:
      name: mlstack-chat
      depends_on: [mlstack-redis]
      spec:
        user: "10001:10001"
        volumes: [/var/lib/mlstack/units/chat/secrets:/run/secrets:ro]
"""

RETURN = r"""
steps:
  description:
    - What each step did - C(images) (name to ref, image_id, operation, changed), C(files) (the paths
      changed), C(container) (C(changed), and C(reason) - why the container changed or not; when
      O(container) is given), C(pruned) (the directories removed).
  returned: always
  type: dict
evidence:
  description: The container step's C(deploy) record, as M(aiops.mlstack.container) returns it.
  returned: when the container step ran
  type: dict
"""
