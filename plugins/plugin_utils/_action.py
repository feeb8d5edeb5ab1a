# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every controller-side action does first: its arguments against its module's spec."""

from __future__ import annotations

from typing import Any

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator


def validated(args: dict[str, Any], spec: dict[str, Any], **rules: Any) -> tuple[dict[str, Any], str | None]:
    """(the validated parameters, None), or ({}, the validator's messages joined) on bad input."""
    validation = ArgumentSpecValidator(spec, **rules).validate(args)
    if validation.error_messages:
        return {}, "; ".join(validation.error_messages)
    return validation.validated_parameters, None
