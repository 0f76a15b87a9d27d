"""The `albumtagger` command: the desktop app, and the same core headless.

Exit status: 0 on success, 2 for a usage error, 1 for any other error, with a
one-line message on stderr that says what to do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from albumtagger import __version__
from albumtagger.config import Settings, data_dir, load_settings, replace_section
from albumtagger.errors import NotFoundError, UnknownTagError, UsageError, UserError

if TYPE_CHECKING:
    from albumtagger.library.listing import PhotoListing
    from albumtagger.model.encoder import GmeEncoder
    from albumtagger.service.session import LibrarySession

log = logging.getLogger("albumtagger")

DEVICES = ("auto", "cuda", "mps", "cpu")
DTYPES = ("auto", "float32", "bfloat16", "float16", "int8")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", help="GME checkpoint: hub id or local folder")
    g.add_argument("--revision", help="hub commit hash of the model")
    g.add_argument("--device", choices=DEVICES, help="where to run the model (default: auto)")
    g.add_argument("--dtype", choices=DTYPES, help="model precision (default: auto)")
    g.add_argument(
        "--min-image-tokens", type=int, metavar="N", help="default: 256 on a GPU, 64 on a CPU"
    )
    g.add_argument(
        "--max-image-tokens", type=int, metavar="N", help="default: 1280 on a GPU, 256 on a CPU"
    )
    g.add_argument("--batch-size", type=int, metavar="N", help="photos per batch (0: auto)")


def _folder(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", type=Path, help="the photo folder")


SHORT_WAIT_S = 10.0
"""How long a short command waits for another albumtagger's unit of work by default."""


def _wait_option(p: argparse.ArgumentParser, *, waits: bool) -> None:
    """`--wait`: how long to wait for another albumtagger working on the library (each
    unit of work waits that long: a watch or the app holds it only while it works)."""
    if waits:
        text = "wait at most this long for another albumtagger working on the library "
        text += "(default: as long as it takes; 0: refuse at once)"
    else:
        text = "wait at most this long for another albumtagger working on the library "
        text += f"(default {SHORT_WAIT_S:g}; 0: refuse at once)"
    p.add_argument(
        "--wait", type=float, metavar="SECONDS", default=None if waits else SHORT_WAIT_S, help=text
    )


def _links_option(p: argparse.ArgumentParser) -> None:
    """`--follow-links`: the `library.follow_links_outside` setting for one run."""
    p.add_argument(
        "--follow-links",
        action="store_true",
        help="also follow symbolic links that lead out of the folder (never into /proc, "
        "/sys or /dev); default: such links are reported and passed over",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="albumtagger",
        description="Tag, search and browse a photo folder with a local AI model. "
        "`albumtagger` or `albumtagger FOLDER` opens the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"albumtagger {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    p = sub.add_parser("gui", help="open the desktop app (the default)")
    p.add_argument("folder", type=Path, nargs="?", help="the photo folder to open")
    _model_options(p)

    p = sub.add_parser("index", help="scan the folder and tag new and changed photos once")
    _folder(p)
    _model_options(p)
    p.add_argument("--scan-only", action="store_true", help="only scan and read, no tagging")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    _links_option(p)
    _wait_option(p, waits=True)

    p = sub.add_parser("watch", help="keep the folder tagged until interrupted")
    _folder(p)
    _model_options(p)
    p.add_argument("--poll", action="store_true", help="poll instead of filesystem events")
    _links_option(p)
    _wait_option(p, waits=True)

    p = sub.add_parser("tags", help="list photos with their tags")
    _folder(p)
    p.add_argument("photos", nargs="*", help="photos (paths relative to the folder or not)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("find", help="photos with (and without) tags")
    _folder(p)
    p.add_argument("--tag", action="append", default=[], metavar="T", help="must have T")
    p.add_argument(
        "--not", dest="not_tags", action="append", default=[], metavar="T", help="must not have T"
    )
    p.add_argument("--any", action="store_true", help="any of the --tag tags is enough")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("search", help="photos ranked by a free-text description")
    _folder(p)
    p.add_argument("query", help='what to look for, e.g. "kids on a beach at sunset"')
    p.add_argument("--top", type=int, default=20, metavar="K", help="how many (default 20)")
    p.add_argument("--json", action="store_true")
    _model_options(p)

    p = sub.add_parser("correct", help="accept, reject, add or remove tags of a photo")
    _folder(p)
    p.add_argument("photo", nargs="?", help="the photo")
    for action, text in (
        ("accept", "confirm a suggested tag"),
        ("reject", "say a suggested tag is wrong"),
        ("add", "add a tag"),
        ("remove", "remove a tag"),
    ):
        p.add_argument(f"--{action}", action="append", default=[], metavar="T", help=text)
    p.add_argument("--undo", action="store_true", help="undo the last correction")
    p.add_argument("--json", action="store_true")
    _wait_option(p, waits=False)
    _model_options(p)

    p = sub.add_parser("review", help="suggestions worth a yes/no, nearest to their thresholds")
    _folder(p)
    p.add_argument("--limit", type=int, default=20, metavar="N")
    p.add_argument(
        "--answer",
        nargs=3,
        action="append",
        default=[],
        metavar=("PHOTO", "TAG", "yes|no"),
        help="answer a review question: does TAG apply to PHOTO?",
    )
    p.add_argument("--json", action="store_true")
    _wait_option(p, waits=False)

    p = sub.add_parser("vocab", help="list or edit the tag vocabulary")
    _folder(p)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--list", action="store_true", help="list the tags")
    g.add_argument(
        "--add", action="append", metavar="T", help='add a tag: "name" or "name: prompt | prompt"'
    )
    p.add_argument(
        "--like",
        action="append",
        default=[],
        metavar="PHOTO",
        help="with --add NAME: learn the tag from these photos (repeat it; each gets the "
        "tag). A new tag gets no prompts: its name is never read as a description, and it "
        "is suggested on other photos once it has 3 of them",
    )
    g.add_argument("--remove", action="append", metavar="T", help="remove a tag")
    g.add_argument(
        "--rename",
        nargs=2,
        action="append",
        metavar=("OLD", "NEW"),
        help="rename a tag (it keeps its photos, answers and threshold)",
    )
    g.add_argument(
        "--prompts",
        action="append",
        metavar="T",
        help='new prompts for a tag: "name: prompt | prompt" (averaged); the library is '
        "scored again from stored vectors, no photo is encoded again",
    )
    g.add_argument(
        "--import",
        dest="import_file",
        type=Path,
        metavar="FILE",
        help='add the tags of a text file: one "name" or "name: prompt | prompt" a line '
        "(blank lines and # comments ignored)",
    )
    g.add_argument(
        "--restore-defaults",
        action="store_true",
        help="add back missing default tags and give default tags their shipped prompts "
        "(your own tags stay)",
    )
    p.add_argument("--json", action="store_true")
    _wait_option(p, waits=False)
    _model_options(p)

    p = sub.add_parser(
        "match",
        help="rank descriptions for an image by how well they match it",
        description="Score each --text against IMAGE (any image file, inside a library or "
        "not), best first. Scores are the cosines of the vectors `albumtagger embed` gives "
        "(same model and image token budget). Confidence (high / medium / low / no match) "
        "is judged as the tag thresholds judge suggestions: a text that names a tag of "
        "the library IMAGE is in uses that tag's threshold and score spread; another text "
        "uses what a new tag of it would start from, over the library's photos; outside a "
        "library (or one tagged with another model), the base threshold.",
    )
    p.add_argument("image", type=Path, help="the image file")
    p.add_argument(
        "--text", action="append", default=[], metavar="T", help="a description (repeat)"
    )
    p.add_argument(
        "--library",
        type=Path,
        metavar="FOLDER",
        help="judge by this library (default: the library IMAGE is in, if any)",
    )
    p.add_argument("--json", action="store_true")
    _model_options(p)

    p = sub.add_parser("export-xmp", help="write tags to XMP sidecars for other photo tools")
    _folder(p)
    p.add_argument(
        "--suggested",
        action="store_true",
        help="also write confident suggestions (marked as such), not only your tags",
    )
    p.add_argument(
        "--style",
        choices=("auto", "photo.jpg.xmp", "photo.xmp"),
        default="auto",
        help="sidecar names (auto: photo.jpg.xmp, or photo.xmp where one exists)",
    )
    p.add_argument("--json", action="store_true")
    _wait_option(p, waits=False)

    p = sub.add_parser("cleanup", help="forget photos marked missing")
    _folder(p)
    p.add_argument("--json", action="store_true")
    _wait_option(p, waits=False)

    p = sub.add_parser("embed", help="print GME vectors of images and texts (texts as queries)")
    _model_options(p)
    p.add_argument("--image", action="append", default=[], type=Path, metavar="FILE")
    p.add_argument("--text", action="append", default=[], metavar="T")
    p.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    return parser


# -- helpers ------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings()
    return replace_section(
        settings,
        "model",
        model=getattr(args, "model", None),
        revision=getattr(args, "revision", None),
        device=getattr(args, "device", None),
        dtype=getattr(args, "dtype", None),
        min_image_tokens=getattr(args, "min_image_tokens", None),
        max_image_tokens=getattr(args, "max_image_tokens", None),
        batch_size=getattr(args, "batch_size", None),
    )


MODEL_SOURCE_OPTIONS = ("model", "revision", "min_image_tokens", "max_image_tokens")


def _explicit_model_fields(args: argparse.Namespace) -> set[str]:
    """Model settings given on purpose (an option or an environment variable): they win
    over the model a library records; settings-file values do not."""
    given = {f for f in MODEL_SOURCE_OPTIONS if getattr(args, f, None) is not None}
    env = {
        f
        for f in MODEL_SOURCE_OPTIONS
        if f"ALBUMTAGGER_{f.upper()}" in os.environ
        or f"ALBUMTAGGER_MODEL_{f.upper()}" in os.environ
    }
    return given | env


def _links(args: argparse.Namespace) -> dict[str, bool | None]:
    """`--follow-links` as a change to the library settings (None: as the settings say)."""
    return {"follow_links_outside": args.follow_links or None}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]}
_CONTROL.update({ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"})
# Bidirectional controls (they reorder what follows: `x\u202egpj.exe` shows as
# `xexe.jpg`) and line/paragraph separators.
_CONTROL.update(
    {c: f"\\u{c:04x}" for c in [0x61C, 0x200E, 0x200F, *range(0x202A, 0x202F), 0x2028, 0x2029]}
)
_CONTROL.update({c: f"\\u{c:04x}" for c in range(0x2066, 0x206A)})


def _printable(text: str) -> str:
    """A file or tag name for a terminal: control characters shown as escapes."""
    return text.translate(_CONTROL)


def _tell_waiting(holder: Any) -> None:
    print(
        f"Waiting for another albumtagger working on this library ({holder.describe()}) "
        "to finish (Ctrl-C to stop)...",
        file=sys.stderr,
        flush=True,
    )


@contextlib.contextmanager
def _busy_hint(args: argparse.Namespace) -> Iterator[None]:
    """A refusal because another albumtagger holds the library says how to wait."""
    from albumtagger.library.lock import LibraryBusyError

    try:
        yield
    except LibraryBusyError as exc:
        if not hasattr(args, "wait"):
            raise
        hint = f"{exc} Or give --wait SECONDS to wait longer for it."
        raise LibraryBusyError(hint, exc.holder) from None


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")  # one write, not millions


def _photo_path(root: Path, given: str) -> str:
    """A photo argument as a relative POSIX path in the library of `root`."""
    path = Path(given)
    if path.is_absolute() or (Path.cwd() / path).exists():
        try:
            return (Path.cwd() / path).absolute().relative_to(root).as_posix()
        except ValueError:
            if path.is_absolute():
                raise NotFoundError(f"{given} is not inside {root}.") from None
    return path.as_posix()


def _photo_id(session: LibrarySession, given: str) -> int:
    return session.photo_id(_photo_path(session.root, given))


PHASE_LABELS = {"vocabulary": "Tag prompts", "tag": "Tagging"}


def _progress_printer(label: str) -> Callable[[Any], None]:
    """A one-line progress bar on stderr (only when stderr is a terminal); `label` is
    used for phases without a label of their own."""
    tty = sys.stderr.isatty()
    last = [0.0]
    finished: set[str] = set()

    def show(p: Any) -> None:
        now = time.monotonic()
        if not tty or (now - last[0] < 0.2 and p.done < p.total) or p.phase in finished:
            return
        last[0] = now
        if p.done >= p.total:
            finished.add(p.phase)
        width = 30
        filled = int(width * p.done / p.total) if p.total else width
        eta = f"{p.eta_s:5.0f}s left" if p.eta_s is not None else "          "
        rate = f"{p.rate:5.2f} photos/s" if p.rate else ""
        name = PHASE_LABELS.get(p.phase, label)
        sys.stderr.write(
            f"\r{name} [{'#' * filled}{'.' * (width - filled)}] {p.done}/{p.total} {rate} {eta}"
        )
        if p.done >= p.total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


# -- commands -----------------------------------------------------------------------


def _session(
    args: argparse.Namespace,
    *,
    folder: Path | None = None,
    create: bool = False,
    on_event=None,
    backup: bool = True,
    write: bool = True,
    **changes,
) -> LibrarySession:
    """The session of the library of `folder` (default: the command's FOLDER), with
    its own model; one that writes takes the library's writer lock for each unit of
    work, waiting for it as `--wait` says."""
    from albumtagger.library.thumbnails import ThumbnailCache
    from albumtagger.service.session import LibrarySession

    settings = _settings(args)
    for section, values in changes.items():
        settings = replace_section(settings, section, **values)
    return LibrarySession(
        args.folder if folder is None else folder,
        settings,
        data_dir=data_dir(),
        on_event=on_event,
        explicit_model=_explicit_model_fields(args),
        create=create,
        thumbnails=ThumbnailCache(),
        backup=backup,
        write=write,
        wait=getattr(args, "wait", 0.0),
        on_wait=_tell_waiting,
    )


EXIT_INTERRUPTED = 3
"""Exit status of an `index` that stopped before the end (the reason is on stderr)."""


def cmd_index(args: argparse.Namespace) -> int:
    show = _progress_printer("Tagging")
    with _session(args, create=True, library=_links(args)) as session:
        if not session.library.sidecar_in_folder:
            print(
                f"{session.root} is read-only; its library is kept in {session.db_path}",
                file=sys.stderr,
            )
        for progress in session.index(tag=not args.scan_only):
            if progress.total:
                show(progress)
        summary = session.index_summary
        assert summary is not None
        offline = summary.tagging.cancelled and not session.library.is_online()
    if args.json:
        _print_json(summary.as_dict())
    else:
        print(summary.describe())
    if summary.tagging.cancelled:
        why = "the folder went offline (missing or unreadable)" if offline else "cancelled"
        print(f"albumtagger: index stopped early: {why}; run it again to finish.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 1 if summary.offline else 0


def cmd_watch(args: argparse.Namespace) -> int:
    from albumtagger.events import FolderState, Notice

    stopping = [False]

    def stop(signum: int, frame: object) -> None:
        log.info("Stopping (signal %d)", signum)
        stopping[0] = True

    def tell(event: object) -> None:
        said = isinstance(event, FolderState) and not event.online  # the folder is away
        if isinstance(event, Notice) or said:
            print(_printable(event.text), file=sys.stderr)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    watch = {"watch": {"force_polling": True}} if args.poll else {}
    with _session(args, create=True, on_event=tell, library=_links(args), **watch) as session:
        print(f"Watching {session.root} (Ctrl-C to stop)", file=sys.stderr)
        while not stopping[0]:
            session.watch_step(1.0)
    return 0


def _listed(photo: PhotoListing) -> dict[str, Any]:
    """One photo of `tags` as its JSON item."""
    item: dict[str, Any] = {
        "path": photo.path,
        "status": photo.status,
        "tags": [
            {
                "name": t.name,
                "score": None if t.score is None else round(t.score, 4),
                "state": t.state,
                "source": t.source,
                "confidence": {"accepted": "high", "rejected": None}.get(t.state, t.confidence),
                "fallback": t.fallback,
            }
            for t in photo.tags
        ],
    }
    if photo.error:
        item["error"] = photo.error
    return item


def cmd_tags(args: argparse.Namespace) -> int:
    with _session(args, backup=False, write=False) as session:
        paths = [_photo_path(session.root, p) for p in args.photos] if args.photos else None
        photos = session.photo_listing(paths)
        unknown = sorted(set(paths or ()) - {p.path for p in photos})
        if unknown:
            raise NotFoundError(
                f"Not in the library: {', '.join(unknown)}. "
                f"Run `albumtagger index {session.root}` first."
            )
    out = [_listed(p) for p in photos]
    if args.json:
        _print_json(out)
        return 0
    for item in out:
        shown = [
            _printable(t["name"]) + ("?" if t["state"] == "suggested" and t["fallback"] else "")
            for t in item["tags"]
            if t["state"] != "rejected"
        ]
        status = item["status"]
        error = item.get("error") or ""
        if error and not error.startswith(status):
            status += f": {error}"
        elif error:
            status = error
        extra = f"  [{_printable(status)}]" if item["status"] != "ok" else ""
        print(f"{_printable(item['path'])}: {', '.join(shown)}{extra}")
    return 0


def _tag_ids(store, names: Sequence[str]) -> list[int]:
    from albumtagger.library.tag_names import clean_name

    ids = []
    for name in names:
        tag = store.tag_by_name(clean_name(name))
        if tag is None:
            raise UnknownTagError(
                f"There is no tag {name!r}; see `albumtagger vocab FOLDER --list`."
            )
        ids.append(tag.id)
    return ids


def cmd_find(args: argparse.Namespace) -> int:
    if not args.tag and not args.not_tags:
        raise UsageError("find needs at least one --tag or --not.")
    from albumtagger.library.db.queries import PhotoFilter

    with _session(args, backup=False, write=False) as session:
        wanted = PhotoFilter(
            tags=_tag_ids(session.store, args.tag),
            exclude=_tag_ids(session.store, args.not_tags),
            match_any=args.any,
        )
        rows = session.find_photos(wanted)
    if args.json:
        _print_json([{"path": r.path, "status": r.status} for r in rows])
    else:
        for r in rows:
            print(_printable(r.path))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise UsageError("--top must be at least 1.")
    with _session(args, backup=False, write=False) as session:
        ids, scores = session.search(args.query, top=args.top)
        paths = {r.id: r.path for r in session.store.photos()}
        hits = [(paths[int(i)], float(sc)) for i, sc in zip(ids, scores, strict=True)]
    if args.json:
        _print_json([{"path": path, "score": round(score, 4)} for path, score in hits])
    else:
        for path, score in hits:
            print(f"{score:.3f}  {_printable(path)}")
    return 0


def cmd_correct(args: argparse.Namespace) -> int:
    actions = [(a, t) for a in ("accept", "reject", "add", "remove") for t in getattr(args, a)]
    if args.undo == bool(actions) or (actions and not args.photo):
        raise UsageError(
            "correct needs a PHOTO with --accept/--reject/--add/--remove T, or --undo alone."
        )
    with _session(args, backup=False) as session:
        results = []
        if args.undo:
            undone = session.undo()
            if undone is None:
                raise UserError("There is no correction to undo.")
            results.append(undone)
        else:
            results = session.correct_photo(_photo_id(session, args.photo), actions)
    _print_corrections(results, args.json)
    return 0


def _print_corrections(results: list, as_json: bool) -> None:
    if as_json:
        _print_json([r.as_dict() for r in results])
    else:
        for r in results:
            print(_printable(r.describe()))


def cmd_review(args: argparse.Namespace) -> int:
    answers = []
    for photo, tag, answer in args.answer:
        if answer.lower() not in ("yes", "no"):
            raise UsageError(f"Answer {answer!r} for {photo} {tag}: say yes or no.")
        answers.append((photo, tag, answer.lower() == "yes"))
    with _session(args, backup=False) as session:
        if answers:
            results = session.answer_review(
                [(_photo_id(session, p), tag, yes) for p, tag, yes in answers]
            )
            _print_corrections(results, args.json)
            return 0
        items = session.review_queue(args.limit)
    if args.json:
        _print_json(items)
    else:
        for item in items:
            mark = "?" if item["suggested"] else " (not suggested)"
            print(
                f"{_printable(item['path'])}: {_printable(item['tag'])}{mark} "
                f"(score {item['score']:.3f}, threshold {item['threshold']:.3f})"
            )
    return 0


def _prompt_spec(text: str) -> tuple[str, list[str]]:
    """`name: prompt | prompt` of `vocab --prompts`."""
    name, sep, rest = text.partition(":")
    prompts = [p.strip() for p in rest.split("|") if p.strip()]
    if not sep or not name.strip() or not prompts:
        raise UsageError(f'--prompts {text!r}: give "name: prompt | prompt".')
    return name, prompts


def cmd_vocab(args: argparse.Namespace) -> int:
    prompt_specs = [_prompt_spec(t) for t in args.prompts or []]
    if args.like and len(args.add or ()) != 1:
        raise UsageError("--like needs one --add NAME: the tag these photos are examples of.")
    with _session(args, create=True, backup=False, write=not args.list) as session:
        changes = []
        if args.like:
            ids = [_photo_id(session, photo) for photo in args.like]
            added, examples = session.learn_tag(args.add[0], ids)
            changes.extend([added] if added is not None else [])
        elif args.add:
            changes.append(session.add_tags(args.add))
        elif args.remove:
            changes.append(session.remove_tags(args.remove))
        elif args.rename:
            changes.extend(session.rename_tags(args.rename))
        elif prompt_specs:
            changes.extend(session.set_tag_prompts(prompt_specs))
        elif args.import_file is not None:
            changes.append(session.import_vocabulary(args.import_file))
        elif args.restore_defaults:
            changes.append(session.restore_default_vocabulary())
        tags = session.store.tags()
        unscored = set(session.tagger().unscored_tags())
    if args.json:
        _print_json(
            [
                {
                    "name": t.name,
                    "prompts": list(t.prompts),
                    "threshold": t.threshold,
                    "events": t.events,
                    "pinned": t.pinned,
                    "scored": t.name not in unscored,
                }
                for t in tags
            ]
        )
    elif args.list:
        for t in tags:
            note = "  (learned from its photos)" if not t.prompts else ""
            note += "  (not scored yet)" if t.name in unscored else ""
            print(_printable(t.name) + note)
    else:
        for change in changes:
            for line in change.lines():
                print(_printable(line))
        if args.like:
            for r in examples:
                print(_printable(r.describe()))
    return 0


def cmd_export_xmp(args: argparse.Namespace) -> int:
    from albumtagger.library.export import ExportError, exporter

    sidecars = exporter("xmp", style=args.style)
    with _session(args, backup=False) as session:
        suggested = args.suggested or session.settings.xmp.include_suggested
        try:
            report = session.export_tags(sidecars, include_suggested=suggested)
            failure = None
        except ExportError as exc:
            report, failure = exc.report, exc
    if args.json:
        _print_json(report.as_dict())
    else:
        print(f"Wrote {_plural(len(report.written), 'XMP sidecar file')}.")
        for path, tag in report.adopted:
            print(_printable(f"{path}: {tag!r} added in another program, now accepted"))
        for path, tag in report.rejected_elsewhere:
            print(_printable(f"{path}: {tag!r} removed in another program, now rejected"))
        for path, why in report.skipped:
            print(_printable(f"Left {path} alone: {why}"))
    if failure is not None:
        raise failure
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    with _session(args, backup=False) as session:
        done = session.forget_missing()
    if args.json:
        _print_json(
            {
                "removed": done.removed,
                "sidecars_deleted": done.sidecars.deleted,
                "sidecars_stripped": done.sidecars.stripped,
            }
        )
    else:
        print(f"Forgot {_plural(done.removed, 'missing photo')}.")
    return 0


def _embed_encoder(args: argparse.Namespace) -> GmeEncoder:
    """The model as `embed` loads it: the settings' model, and the published recipe's
    image token budget unless one is given (not the CPU's own smaller default)."""
    from albumtagger.model.encoder import DEFAULT_MAX_IMAGE_TOKENS, DEFAULT_MIN_IMAGE_TOKENS
    from albumtagger.model.loading import load_encoder

    settings = _settings(args)
    m = settings.model
    settings = replace_section(
        settings,
        "model",
        min_image_tokens=m.min_image_tokens or DEFAULT_MIN_IMAGE_TOKENS,
        max_image_tokens=m.max_image_tokens or DEFAULT_MAX_IMAGE_TOKENS,
    )
    return load_encoder(settings)


def cmd_embed(args: argparse.Namespace) -> int:
    from albumtagger.library.images import read_photo
    from albumtagger.model.encoder import QUERY_INSTRUCTION

    if not args.image and not args.text:
        raise UsageError("embed needs at least one --image FILE or --text T.")
    encoder = _embed_encoder(args)
    texts = encoder.embed_texts(args.text, QUERY_INSTRUCTION) if args.text else []
    photos = [read_photo(p).image for p in args.image]
    vectors = encoder.embed_images(photos) if photos else []
    _print_json(
        {
            "model": encoder.model_id,
            "texts": [
                {"text": t, "vector": v.tolist()} for t, v in zip(args.text, texts, strict=True)
            ],
            "images": [
                {"path": str(p), "vector": v.tolist()}
                for p, v in zip(args.image, vectors, strict=True)
            ],
        }
    )
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    from albumtagger.library.images import read_photo
    from albumtagger.model.encoder import QUERY_INSTRUCTION
    from albumtagger.service import matching

    texts = list(dict.fromkeys(t.strip() for t in args.text if t.strip()))
    if not texts:
        raise UsageError("match needs at least one --text T.")
    if not args.image.is_file():
        raise NotFoundError(f"There is no image file {args.image}; check the path.")
    settings = _settings(args)
    root = args.library or matching.find_library(args.image, data_dir())
    encoder = _embed_encoder(args)
    image = encoder.embed_images([read_photo(args.image).image])[0]
    vectors = encoder.embed_texts(texts, QUERY_INSTRUCTION)
    scores = vectors @ image
    judges = None
    note = ""
    if root is not None:
        with _session(args, folder=root, backup=False, write=False) as session:
            judges, why = session.text_judges(encoder.model_id, texts, vectors)
        if judges is None:
            note = f"{why}: judged by the base threshold"
    if judges is None:
        judges = matching.standalone_judges(settings, len(texts))
    matches = matching.ranked(texts, scores, judges, settings)
    if args.json:
        _print_json(
            {
                "image": str(args.image),
                "library": None if root is None else str(root),
                "model": encoder.model_id,
                "note": note,
                "matches": [{**m, "score": round(m["score"], 6)} for m in matches],
            }
        )
        return 0
    print(_printable(str(args.image)) + (f"  (library {_printable(str(root))})" if root else ""))
    best = max(max(m["score"] for m in matches), 1e-9)
    width = max(len(m["confidence"]) for m in matches)
    for m in matches:
        filled = round(20 * min(max(m["score"], 0.0) / best, 1.0))
        bar = "#" * filled + "." * (20 - filled)
        print(f"  {m['score']:6.3f} [{bar}] {m['confidence']:<{width}}  {_printable(m['text'])}")
    if note:
        print(_printable(f"Note: {note}."), file=sys.stderr)
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    import importlib.util

    if importlib.util.find_spec("albumtagger.app.main") is None:
        if args.command is None:  # plain `albumtagger`: say what there is
            build_parser().print_help()
            print("\nThe desktop app is not part of this version yet; the commands above work.")
            return 0
        raise UserError(
            "The desktop app is not part of this version yet; the command-line tools work: "
            "see `albumtagger --help`."
        )
    from albumtagger.app.main import run_app

    return run_app(args.folder, _settings(args))


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "gui": cmd_gui,
    "index": cmd_index,
    "watch": cmd_watch,
    "tags": cmd_tags,
    "find": cmd_find,
    "search": cmd_search,
    "correct": cmd_correct,
    "review": cmd_review,
    "vocab": cmd_vocab,
    "export-xmp": cmd_export_xmp,
    "cleanup": cmd_cleanup,
    "embed": cmd_embed,
    "match": cmd_match,
}


def main(argv: Sequence[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # a bundled app's model process starts here
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    if first is not None and first not in COMMANDS and (os.sep in first or Path(first).exists()):
        argv.insert(argv.index(first), "gui")  # `albumtagger FOLDER` opens the app
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    command = args.command or "gui"
    if args.command is None:
        args.folder = None
    try:
        with _busy_hint(args):
            return COMMANDS[command](args)
    except UsageError as exc:
        print(f"albumtagger {command}: {exc}", file=sys.stderr)
        return 2
    except UserError as exc:
        option = f" (option --{exc.setting.replace('_', '-')})" if exc.setting else ""
        print(f"albumtagger: {exc}{option}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("albumtagger: interrupted; run the same command again to go on.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        log.debug("Internal error", exc_info=True)
        print(
            f"albumtagger: internal error ({type(exc).__name__}: {exc}). This is a bug: "
            "run again with -v and report it.",
            file=sys.stderr,
        )
        if args.verbose:
            raise
        return 1
