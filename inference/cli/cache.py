"""`baichuan-chat-cli cache list | clear [--all | KEY]`: the quantized-weight cache, shown and emptied."""
from __future__ import annotations

from ..errors import InputError


def add_cache_parser(sub) -> None:
    cache = sub.add_parser("cache", help="list or clear the quantized-weight cache (second int8/int4 loads read it)")
    actions = cache.add_subparsers(dest="cache_action", required=True, metavar="{list,clear}")
    actions.add_parser("list", help="one line per entry: key, size, mode, dtype, model folder")
    clear = actions.add_parser("clear", help="remove one entry (KEY) or all of them (--all)")
    which = clear.add_mutually_exclusive_group(required=True)
    which.add_argument("key", nargs="?", metavar="KEY", help="the entry's key, as `cache list` prints it")
    which.add_argument("--all", action="store_true", help="remove every entry")


def megabytes(size: int) -> str:
    return f"{size / (1 << 20):.1f} MB"


def run_cache(args) -> int:
    from .. import quant_cache_dir as store

    root = store.cache_root()
    if args.cache_action == "list":
        found = store.entries(root)
        for e in found:
            print(f"{e.key}  {megabytes(e.size)}  {e.quantize or '?'}  {e.dtype or '?'}  {e.folder or '(unreadable)'}")
        total = sum(e.size for e in found)
        print(f"{len(found)} entr{'y' if len(found) == 1 else 'ies'}, {megabytes(total)} in {root}")
        return 0
    try:
        count, freed = store.clear(None if args.all else args.key, root)
    except KeyError:
        raise InputError(f"no quantized cache entry {args.key!r} in {root} (see `cache list`)") from None
    print(f"removed {count} entr{'y' if count == 1 else 'ies'} ({megabytes(freed)}) from {root}")
    return 0
