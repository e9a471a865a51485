"""The reconstruction commands an incident responder types: ``show``, ``find``, ``cost``, ``export``."""

from __future__ import annotations

from typing import Any

from otel_llm_audit.cli.cost import add_cost_parser
from otel_llm_audit.cli.export import add_export_parser
from otel_llm_audit.cli.find import add_find_parser
from otel_llm_audit.cli.show import add_show_parser


def add_query_parsers(commands: Any) -> None:
    """Register the subcommands; each sets ``handler`` (run through ``options.run_command``)."""
    add_show_parser(commands)
    add_find_parser(commands)
    add_cost_parser(commands)
    add_export_parser(commands)
