"""alphagan-video for DaVinci Resolve (Workspace -> Scripts -> alphagan_matte).

What it does, inside a running Resolve:
  1. exports the current timeline as OpenTimelineIO (``Timeline.Export(path, resolve.EXPORT_OTIO)``);
     with clips selected in the Media Pool, only timeline clips of that media are kept
     (the others become gaps, so timing is unchanged);
  2. runs ``alphagan-video timeline EXPORT.otio -o DIR`` in a subprocess (the package is installed
     in its own Python; Resolve's Python only needs the standard library);
  3. attaches each matte to its source clip (``MediaStorage.AddClipMattesToMediaPool``) and
     imports the matte timeline (``MediaPool.ImportTimelineFromFile``).

Settings come from environment variables (set them before starting Resolve) or the defaults below:
  ALPHAGAN_VIDEO_CLI      the command to run (default: ``alphagan-video`` found on PATH), e.g.
                          ``/opt/alphagan/venv/bin/alphagan-video``
  ALPHAGAN_OUTPUT_DIR     where mattes go (default: ``<home>/alphagan-mattes/<project>/<timeline>``)
  ALPHAGAN_HANDLES        extra frames matted each side of every clip (default 12)
  ALPHAGAN_OUTPUT_KIND    ``alpha`` (default; a luma matte, what Resolve's clip mattes use) or ``rgba``
  ALPHAGAN_EXTRA_ARGS     extra CLI options, e.g. ``--mask chroma --device cuda``
  ALPHAGAN_IMPORT_TIMELINE  ``0`` to skip importing the matte timeline

Everything above ``run_in_resolve`` is pure Python (no Resolve) and is tested in
tests/test_plugin_resolve.py. The file avoids Python >= 3.7 features: Resolve runs scripts with
whatever Python 3 the user installed (3.6+).
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

DEFAULT_HANDLES = 12
DEFAULT_OUTPUT_KIND = "alpha"
METADATA_KEY = "alphagan"


class MatteResult(object):
    """One processed clip of the matte timeline: its source media, the matte file and the
    processed source frames (inclusive, 0-based file frames)."""

    __slots__ = ("name", "source_path", "matte_path", "frames", "track")

    def __init__(self, name, source_path, matte_path, frames, track):
        self.name = name
        self.source_path = source_path
        self.matte_path = matte_path
        self.frames = frames
        self.track = track

    def __repr__(self):
        return "MatteResult(%r, %r -> %r, frames=%r)" % (self.name, self.source_path, self.matte_path, self.frames)


# --------------------------------------------------------------------------- pure helpers

def url_to_path(url, base_dir=None):
    """``file:///a/b.mov``, ``/a/b.mov`` or ``b.mov`` (relative to base_dir) -> local path; None otherwise."""
    if not url:
        return None
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            return url2pathname(unquote("//" + parsed.netloc + parsed.path))
        return url2pathname(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        return None
    if not os.path.isabs(url) and base_dir:
        return os.path.join(base_dir, url)
    return url


def path_key(path):
    """A comparison key for file paths as Resolve and OTIO spell them (case on Windows, ./..)."""
    return os.path.normcase(os.path.normpath(path)) if path else None


def find_cli(environ=None, which=shutil.which):
    """The alphagan-video command as an argv prefix, or raise RuntimeError saying how to set it."""
    environ = os.environ if environ is None else environ
    configured = environ.get("ALPHAGAN_VIDEO_CLI", "").strip()
    if configured:
        return shlex.split(configured)
    found = which("alphagan-video")
    if found:
        return [found]
    raise RuntimeError(
        "alphagan-video was not found on PATH; install it (pip install alphagan-video[otio]) and set "
        "ALPHAGAN_VIDEO_CLI to its full path, e.g. /opt/alphagan/venv/bin/alphagan-video"
    )


def settings_from_env(environ=None):
    """dict(handles, output_kind, extra_args, import_timeline, output_dir) from the environment."""
    environ = os.environ if environ is None else environ
    try:
        handles = int(environ.get("ALPHAGAN_HANDLES", DEFAULT_HANDLES))
    except ValueError:
        raise RuntimeError("ALPHAGAN_HANDLES=%r: expected a whole number of frames" % environ.get("ALPHAGAN_HANDLES"))
    kind = environ.get("ALPHAGAN_OUTPUT_KIND", DEFAULT_OUTPUT_KIND)
    if kind not in ("alpha", "rgba"):
        raise RuntimeError("ALPHAGAN_OUTPUT_KIND=%r: expected alpha or rgba" % kind)
    return {
        "handles": handles,
        "output_kind": kind,
        "extra_args": shlex.split(environ.get("ALPHAGAN_EXTRA_ARGS", "")),
        "import_timeline": environ.get("ALPHAGAN_IMPORT_TIMELINE", "1") != "0",
        "output_dir": environ.get("ALPHAGAN_OUTPUT_DIR") or None,
    }


def default_output_dir(project_name, timeline_name, home=None):
    """``<home>/alphagan-mattes/<project>/<timeline>`` with file-system-safe names."""
    def safe(name):
        cleaned = "".join(c if (c.isalnum() or c in "._- ") else "_" for c in (name or "")).strip(" .")
        return cleaned or "untitled"

    home = home or os.path.expanduser("~")
    return os.path.join(home, "alphagan-mattes", safe(project_name), safe(timeline_name))


def build_timeline_command(cli, edit_path, out_dir, handles=DEFAULT_HANDLES, output_kind=DEFAULT_OUTPUT_KIND,
                           extra_args=(), timeline_out=None, report_path=None):
    """argv for ``alphagan-video timeline``.

    The per-clip files are ProRes (.mov): a ProRes 422 HQ luma matte for ``alpha``, ProRes 4444
    with straight alpha for ``rgba``. ``--overwrite`` because re-running the script on the same
    timeline should replace the previous mattes.
    """
    argv = list(cli) + ["timeline", str(edit_path), "-o", str(out_dir), "--handles", str(int(handles)),
                        "--output-kind", output_kind, "--ext", ".mov", "--overwrite", "-q"]
    if timeline_out:
        argv += ["--timeline-out", str(timeline_out)]
    if report_path:
        argv += ["--json-report", str(report_path)]
    return argv + list(extra_args)


def _walk_clips(node, track_index, out):
    """Collect (track index, clip dict) from an OTIO JSON Track/Stack subtree in order."""
    schema = node.get("OTIO_SCHEMA", "")
    if schema.startswith("Clip."):
        out.append((track_index, node))
    for child in node.get("children", []) or []:
        _walk_clips(child, track_index, out)


def video_clip_dicts(otio_doc):
    """(video track index, clip dict) for every clip on a video track of an OTIO JSON document
    (a Timeline dict as json.load gives it), nested stacks included, in track order."""
    tracks = (otio_doc.get("tracks") or {}).get("children", []) or []
    out = []
    video_index = 0
    for track in tracks:
        if track.get("kind") != "Video":
            continue
        _walk_clips(track, video_index, out)
        video_index += 1
    return out


def _media_url(clip):
    refs = clip.get("media_references")
    if isinstance(refs, dict):  # Clip.2: several references, one active
        ref = refs.get(clip.get("active_media_reference_key") or "DEFAULT_MEDIA") or {}
    else:  # Clip.1
        ref = clip.get("media_reference") or {}
    return ref.get("target_url")


def keep_only_media(otio_doc, selected_paths, base_dir=None):
    """Replace every video clip whose media is not in ``selected_paths`` by a gap of the same
    length (timing unchanged); returns (new document, number of clips kept). Pure: works on the
    JSON dict, so Resolve's Python needs no opentimelineio."""
    doc = json.loads(json.dumps(otio_doc))  # deep copy
    wanted = set(path_key(p) for p in selected_paths if p)
    kept = 0

    def visit(node, in_video):
        count = 0
        children = node.get("children")
        if not children:
            return 0
        for i, child in enumerate(children):
            schema = child.get("OTIO_SCHEMA", "")
            if schema.startswith("Clip.") and in_video:
                path = url_to_path(_media_url(child), base_dir)
                if path_key(path) in wanted:
                    count += 1
                else:
                    children[i] = {"OTIO_SCHEMA": "Gap.1", "name": "", "metadata": {},
                                   "source_range": child.get("source_range"), "effects": [], "markers": [],
                                   "enabled": True}
            else:
                count += visit(child, in_video)
        return count

    for track in (doc.get("tracks") or {}).get("children", []) or []:
        kept += visit(track, track.get("kind") == "Video")
    return doc, kept


def parse_matte_timeline(otio_doc, base_dir=None):
    """MatteResults of the processed clips of a timeline written by ``alphagan-video timeline``
    (read from each clip's ``metadata["alphagan"]``), plus the (name, reason) of skipped clips."""
    results, skipped = [], []
    for track, clip in video_clip_dicts(otio_doc):
        meta = (clip.get("metadata") or {}).get(METADATA_KEY)
        if not meta:
            continue
        if meta.get("status") != "ok":
            skipped.append((clip.get("name") or "", meta.get("reason") or "skipped"))
            continue
        frames = meta.get("frames")
        results.append(MatteResult(
            name=clip.get("name") or "",
            source_path=url_to_path(meta.get("source_url"), base_dir),
            matte_path=meta.get("output") or url_to_path(_media_url(clip)),
            frames=tuple(frames) if frames else None,
            track=track,
        ))
    return results, skipped


def group_mattes_by_source(results, items_by_path):
    """Map MatteResults to media pool items.

    Args:
        results: MatteResults (several clips may share one source).
        items_by_path: {source file path: media pool item} (any objects).
    Returns:
        (list of (item, [matte paths]) in first-seen order, list of MatteResults with no item).
    """
    keyed = dict((path_key(p), item) for p, item in items_by_path.items())
    order, grouped, unmatched = [], {}, []
    for result in results:
        key = path_key(result.source_path)
        if key not in keyed:
            unmatched.append(result)
            continue
        if key not in grouped:
            grouped[key] = []
            order.append(key)
        if result.matte_path not in grouped[key]:
            grouped[key].append(result.matte_path)
    return [(keyed[k], grouped[k]) for k in order], unmatched


def run_cli(argv, log=print):
    """Run the CLI, echoing its stderr lines to ``log``; raise RuntimeError with its last error line."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    except OSError as exc:
        raise RuntimeError("cannot start %s: %s; set ALPHAGAN_VIDEO_CLI" % (argv[0], exc))
    out, err = proc.communicate()
    for line in (err or "").splitlines():
        if line.strip():
            log(line)
    if proc.returncode != 0:
        errors = [line for line in (err or "").splitlines() if "error:" in line]
        raise RuntimeError(errors[-1] if errors else "alphagan-video exited with code %d" % proc.returncode)
    return out


# --------------------------------------------------------------------------- inside Resolve

def get_resolve():
    """The Resolve scripting object. Inside Resolve the script runs with ``resolve`` / ``bmd`` /
    ``app`` predefined (in this module's globals or ``__main__``); outside, the
    DaVinciResolveScript module connects to a running Resolve (external scripting must be allowed)."""
    spaces = [globals(), vars(sys.modules["__main__"]) if "__main__" in sys.modules else {}]
    for space in spaces:
        if space.get("resolve") is not None:
            return space["resolve"]
    for space in spaces:
        bmd = space.get("bmd")
        if bmd is not None and hasattr(bmd, "scriptapp"):
            return bmd.scriptapp("Resolve")
        app = space.get("app") or space.get("fusion")
        if app is not None and hasattr(app, "GetResolve"):
            return app.GetResolve()
    try:
        import DaVinciResolveScript as dvr  # noqa: N813 - Blackmagic's module name
    except ImportError:
        return None
    return dvr.scriptapp("Resolve")


def main():
    try:
        run_in_resolve(get_resolve())
    except RuntimeError as exc:
        print("alphagan: error: %s" % exc)


def _media_pool_items(folder, out):
    """{file path: MediaPoolItem} for a Media Pool folder tree."""
    for clip in folder.GetClipList() or []:
        path = clip.GetClipProperty("File Path")
        if path:
            out[path] = clip
    for sub in folder.GetSubFolderList() or []:
        _media_pool_items(sub, out)
    return out


def run_in_resolve(resolve, environ=None, log=print):
    """The whole round trip on the current project and timeline; returns a summary line."""
    if resolve is None:
        raise RuntimeError("DaVinci Resolve is not reachable: run this from Workspace -> Scripts inside Resolve")
    settings = settings_from_env(environ)
    cli = find_cli(environ)
    project = resolve.GetProjectManager().GetCurrentProject()
    timeline = project.GetCurrentTimeline() if project else None
    if timeline is None:
        raise RuntimeError("no current timeline: open the timeline to matte first")
    if not hasattr(resolve, "EXPORT_OTIO"):
        raise RuntimeError("this Resolve has no OTIO export (needs DaVinci Resolve 18.5 or newer)")
    media_pool = project.GetMediaPool()
    out_dir = settings["output_dir"] or default_output_dir(project.GetName(), timeline.GetName())
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    work = tempfile.mkdtemp(prefix="alphagan-resolve-")
    export_path = os.path.join(work, "timeline.otio")
    if not timeline.Export(export_path, resolve.EXPORT_OTIO):
        raise RuntimeError("Resolve could not export the timeline as OTIO to %s" % export_path)
    with open(export_path) as fh:
        doc = json.load(fh)
    selected = media_pool.GetSelectedClips() if hasattr(media_pool, "GetSelectedClips") else None
    selected_paths = [c.GetClipProperty("File Path") for c in (selected or [])]
    if any(selected_paths):
        doc, kept = keep_only_media(doc, selected_paths)
        if not kept:
            raise RuntimeError("none of the selected Media Pool clips is used in the current timeline")
        with open(export_path, "w") as fh:
            json.dump(doc, fh)
        log("alphagan: %d timeline clip(s) of the %d selected Media Pool clip(s)" % (kept, len(selected_paths)))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    matte_timeline_path = os.path.join(out_dir, "%s.alphagan.otio" % stamp)
    argv = build_timeline_command(cli, export_path, out_dir, settings["handles"], settings["output_kind"],
                                  settings["extra_args"], timeline_out=matte_timeline_path)
    log("alphagan: running " + " ".join(shlex.quote(a) for a in argv))
    run_cli(argv, log)
    with open(matte_timeline_path) as fh:
        results, skipped = parse_matte_timeline(json.load(fh))
    for name, reason in skipped:
        log("alphagan: skipped %s: %s" % (name, reason))
    items = _media_pool_items(media_pool.GetRootFolder(), {})
    groups, unmatched = group_mattes_by_source(results, items)
    storage = resolve.GetMediaStorage()
    attached = 0
    for item, mattes in groups:
        if storage.AddClipMattesToMediaPool(item, mattes):
            attached += len(mattes)
        else:
            log("alphagan: Resolve refused the matte(s) %s for %s" % (", ".join(mattes), item.GetName()))
    for result in unmatched:
        log("alphagan: no Media Pool clip for %s (matte %s)" % (result.source_path, result.matte_path))
    if settings["import_timeline"] and results:
        name = "%s alphagan %s" % (timeline.GetName(), stamp)
        if not media_pool.ImportTimelineFromFile(matte_timeline_path, {"timelineName": name}):
            log("alphagan: could not import %s as a timeline" % matte_timeline_path)
    summary = "alphagan: %d matte(s) attached, %d clip(s) skipped; files in %s" % (attached, len(skipped), out_dir)
    log(summary)
    return summary


# Resolve runs the file as a script, with its scripting globals predefined.
if __name__ == "__main__" or any(name in globals() for name in ("resolve", "bmd", "app")):
    main()
