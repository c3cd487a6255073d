"""Field-precedence parsing of panel replies into usage counters, one module per panel.

Each parser takes a decoded JSON value and returns either a `CounterReading`
(bytes >= 0 and the path it came from) or a `HardFailure` with a reason;
listing parsers return a `ListingPage` or the reason the reply is not one.
None of them raises, whatever the JSON value.
"""

from usage_core.readings.base import (
    MAX_BYTES,
    NO_USAGE_FIELDS,
    CounterReading,
    HardFailure,
    ListingPage,
    RemoteResult,
    UsageResult,
    byte_count,
    out_of_range,
)
from usage_core.readings.eylandoo import (
    parse_eylandoo_list_all,
    parse_eylandoo_list_item,
    parse_eylandoo_user,
)
from usage_core.readings.hiddify import gib_to_bytes, parse_hiddify_user, parse_hiddify_users
from usage_core.readings.marzban import (
    parse_marzban_user,
    parse_marzban_users_page,
    parse_marzneshin_user,
    parse_marzneshin_users_page,
)
from usage_core.readings.pasarguard import (
    AdminState,
    admin_state,
    parse_pasarguard_admins,
    parse_pasarguard_user,
)
from usage_core.readings.remnawave import (
    StreamPage,
    parse_remnawave_stream,
    parse_remnawave_total,
    parse_remnawave_user,
    parse_remnawave_user_object,
)
from usage_core.readings.xui import (
    parse_xui_client_traffic,
    parse_xui_envelope,
    parse_xui_inbounds,
)

__all__ = [
    "MAX_BYTES",
    "NO_USAGE_FIELDS",
    "AdminState",
    "CounterReading",
    "HardFailure",
    "ListingPage",
    "RemoteResult",
    "StreamPage",
    "UsageResult",
    "admin_state",
    "byte_count",
    "gib_to_bytes",
    "out_of_range",
    "parse_eylandoo_list_all",
    "parse_eylandoo_list_item",
    "parse_eylandoo_user",
    "parse_hiddify_user",
    "parse_hiddify_users",
    "parse_marzban_user",
    "parse_marzban_users_page",
    "parse_marzneshin_user",
    "parse_marzneshin_users_page",
    "parse_pasarguard_admins",
    "parse_pasarguard_user",
    "parse_remnawave_stream",
    "parse_remnawave_total",
    "parse_remnawave_user",
    "parse_remnawave_user_object",
    "parse_xui_client_traffic",
    "parse_xui_envelope",
    "parse_xui_inbounds",
]
