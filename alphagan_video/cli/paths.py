"""The files a command reads and writes, checked against each other in the preflight (before the
model loads): nothing the run writes (OUTPUT, ``--json-report``, a sequence's frames) may be a
file it reads (INPUT, masks, plates, trimaps, checkpoints, prompts, a background image) -- through
symlinks and hard links too, ``--overwrite`` or not -- nor another file it writes
(``io.collisions``). A ``--json-report`` must be a file that can be created. Side files are
staged beside their target and published together with OUTPUT (``StagedReport``)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable, Optional

from alphagan_video.config import PipelineConfig
from alphagan_video.errors import OutputError
from alphagan_video.io.collisions import RunPath, check_no_collisions, check_writable_file

__all__ = ["RunPath", "StagedReport", "check_run_paths", "run_reads"]


def _expanded(role: str, path, *, pattern: bool) -> list[RunPath]:
    """``path`` and, for a ``%04d`` pattern, every existing file it matches (a sequence's frames)."""
    items = [RunPath(role, path)]
    if pattern:
        from alphagan_video.io.writer import existing_sequence_files

        items += [RunPath(role, f) for f in existing_sequence_files(os.fspath(path))]
    return items


def _is_pattern(path) -> bool:
    from alphagan_video.io.reader import is_sequence_pattern

    return is_sequence_pattern(os.fspath(path))


def run_reads(input_path: Optional[str], cfg: PipelineConfig) -> list[RunPath]:
    """Every file a run of ``cfg`` on ``input_path`` reads, named as the user named it."""
    reads: list[RunPath] = []
    if input_path is not None:
        reads += _expanded("INPUT", input_path, pattern=_is_pattern(input_path))
    if cfg.trimap.trimap_path is not None:
        reads += _expanded("--trimap", cfg.trimap.trimap_path, pattern=_is_pattern(cfg.trimap.trimap_path))
    else:
        from alphagan_video.errors import UserInputError
        from alphagan_video.masks import parse_mask_spec

        try:
            spec = parse_mask_spec(cfg.mask.source)
        except UserInputError:
            spec = None  # refused with its own message by the config checks
        if spec is not None and spec.takes_path:
            reads += _expanded("--mask", spec.arg, pattern=_is_pattern(spec.arg))
    from alphagan_video.model.registry import DEFAULT_WEIGHTS_PATH

    checkpoint = ("--checkpoint", cfg.model.checkpoint) if cfg.model.checkpoint is not None \
        else ("the shipped weights", DEFAULT_WEIGHTS_PATH)
    for role, path in (checkpoint, ("--prompts", cfg.mask.prompts_json),
                       ("--sam-checkpoint", cfg.mask.sam_checkpoint)):
        if path is not None:
            reads.append(RunPath(role, path))
    background = cfg.output.background
    if isinstance(background, (str, os.PathLike)) and os.path.isfile(background):
        reads.append(RunPath("--background", background))
    return reads


def check_run_paths(reads: Iterable[RunPath], output_path: Optional[str], *,
                    json_report: Optional[Path] = None, side_files: Iterable[RunPath] = (),
                    created_folder: Optional[Path] = None) -> None:
    """Refuse (OutputError, exit 2) a written path that is a read path or another written path,
    and a ``--json-report`` (or other side file) that cannot be created. Model-free: stats, and
    one probe file created and removed beside each side file -- except those in
    ``created_folder``, a folder the command creates itself (timeline's ``-o DIR``)."""
    writes: list[RunPath] = []
    if output_path is not None:
        writes += _expanded("OUTPUT", output_path, pattern=_is_pattern(output_path))
    side = list(side_files)
    if json_report is not None:
        side.insert(0, RunPath("--json-report", json_report))
    try:
        check_no_collisions(list(reads), writes + side)
    except OutputError as exc:
        exc.mentions = (*exc.mentions, "output.overwrite")  # shown as --overwrite
        raise
    created = os.path.abspath(created_folder) if created_folder is not None else None
    for item in side:
        if created is None or os.path.abspath(os.path.dirname(os.fspath(item.path)) or ".") != created:
            check_writable_file(item)


def _write_new_file(path: str, text: str) -> None:
    """Create ``path`` (never an existing file), write ``text``, fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


class StagedReport:
    """A JSON side file written into a temporary beside it (``_atomic.StagedFile``) while OUTPUT
    is still a temporary too (``stage``: ``matte_video``'s ``before_publish``), then renamed into
    place right after OUTPUT (``publish``, returned by ``stage``: the writer runs it and, if it
    fails, takes back the files the run just published -- a sequence's own frames included);
    ``discard`` removes the temporary. A report that cannot be written leaves neither."""

    def __init__(self, path: Optional[Path]) -> None:
        from alphagan_video._atomic import StagedFile

        self.staged = StagedFile(path, ".json") if path is not None else None

    def stage(self, data: dict) -> Optional[Callable[[], None]]:
        """Write the report into its temporary; return its ``publish`` (None: no report)."""
        if self.staged is None:
            return None
        text = json.dumps(data, indent=2, default=str) + "\n"
        try:
            _write_new_file(self.staged.tmp, text)
        except OSError as exc:
            self.discard()
            from alphagan_video.io.writer import raise_if_environment

            raise_if_environment(exc, self.staged.path if self.staged else "--json-report")
            raise OutputError(f"--json-report {self.staged.path if self.staged else ''}: cannot be written "
                              f"({exc.strerror or exc})") from None
        return self.publish

    def publish(self) -> None:
        if self.staged is not None and self.staged.tmp is not None:
            try:
                self.staged.publish()
            except OSError as exc:
                self.discard()
                raise OutputError(f"--json-report {self.staged.path}: cannot be moved into place "
                                  f"({exc.strerror or exc})") from None

    def discard(self) -> None:
        if self.staged is not None:
            try:
                self.staged.discard()
            except OSError:
                pass
