"""alphagan-video for Blender's Video Sequence Editor.

Strip > alphagan-video Matte: runs ``alphagan-video`` (installed in its own Python; Blender's
Python needs nothing extra) on the visible frames (+ handles) of every selected movie strip and
adds each RGBA result as a movie strip in the lowest free channel above its source, aligned
frame for frame, with alpha mode Straight (what ProRes 4444 from alphagan-video holds) and
blend Alpha Over, so the matted subject composites over whatever is below.

Pure logic lives in ``core.py`` (tested without Blender); this file is the bpy glue. No
``from __future__ import annotations`` here: bpy reads the property annotations at registration.
"""
import os
import shlex
import subprocess

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from . import core

bl_info = {
    "name": "alphagan-video Matte",
    "author": "alphagan-video contributors",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "Video Sequencer > Strip > alphagan-video Matte",
    "description": "Matte selected movie strips with alphagan-video (ProRes 4444, straight alpha)",
    "category": "Sequencer",
}


def _prefs(context):
    addon = context.preferences.addons.get(__package__ or __name__)
    return addon.preferences if addon is not None else None


class ALPHAGAN_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = __package__ or __name__

    cli: StringProperty(
        name="alphagan-video command",
        description="Path of alphagan-video (or a command line such as '/venv/bin/python -m alphagan_video'); "
                    "empty = find alphagan-video on PATH",
        default="",
    )
    extra_args: StringProperty(name="Extra options", description="Extra alphagan-video options, e.g. --device cuda",
                               default="")
    output_dir: StringProperty(name="Output folder", subtype="DIR_PATH", default="//alphagan/",
                               description="Where the matted movies go ('//' = beside the .blend file)")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "cli")
        layout.prop(self, "extra_args")
        layout.prop(self, "output_dir")


class SEQUENCER_OT_alphagan_matte(bpy.types.Operator):
    """Matte the selected movie strips with alphagan-video and add the results above them"""

    bl_idname = "sequencer.alphagan_matte"
    bl_label = "alphagan-video Matte"
    bl_options = {"REGISTER", "UNDO"}

    handles: IntProperty(name="Handles", description="Extra frames matted before and after the visible part",
                         default=0, min=0)
    output_kind: EnumProperty(name="Output", items=[
        ("rgba", "RGBA", "Foreground colour + straight alpha (ProRes 4444), alpha-over the source"),
        ("alpha", "Matte", "Grey matte only (ProRes 422 HQ)"),
    ], default="rgba")
    cli: StringProperty(name="Command", description="Overrides the add-on preference when set", default="")
    extra_args: StringProperty(name="Extra options", description="Overrides the add-on preference when set",
                               default="")
    output_dir: StringProperty(name="Output folder", subtype="DIR_PATH", default="",
                               description="Overrides the add-on preference when set")

    @classmethod
    def poll(cls, context):
        scene = context.scene
        se = scene.sequence_editor if scene else None
        return se is not None and any(s.select and s.type == "MOVIE" for s in se.strips_all)

    def _setting(self, context, name, fallback):
        value = getattr(self, name)
        if value:
            return value
        prefs = _prefs(context)
        return getattr(prefs, name) if prefs is not None and getattr(prefs, name) else fallback

    def execute(self, context):
        scene = context.scene
        se = scene.sequence_editor
        strips = [s for s in se.strips_all if s.select and s.type == "MOVIE"]
        try:
            cli = core.cli_argv(self._setting(context, "cli", ""))
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        extra = shlex.split(self._setting(context, "extra_args", ""))
        out_dir_setting = self._setting(context, "output_dir", "//alphagan/")
        if out_dir_setting.startswith("//") and not bpy.data.filepath:
            self.report({"ERROR"}, "save the .blend file first, or set an absolute output folder")
            return {"CANCELLED"}
        out_dir = bpy.path.abspath(out_dir_setting)
        os.makedirs(out_dir, exist_ok=True)

        jobs = []
        for strip in strips:
            try:
                a, b, first, last = core.used_frames(strip.frame_start, strip.frame_final_start,
                                                     strip.frame_final_end, strip.frame_duration, self.handles)
            except ValueError as exc:
                self.report({"WARNING"}, f"{strip.name}: {exc}")
                continue
            source = bpy.path.abspath(strip.filepath)
            jobs.append((strip, source, a, b, first, last))
        total = sum(b - a + 1 for _, _, a, b, _, _ in jobs)
        wm = context.window_manager
        wm.progress_begin(0, max(total, 1))
        done_before = 0
        added = []
        try:
            for strip, source, a, b, first, last in jobs:
                output = core.output_path(out_dir, source, strip.name, a, b)
                argv = core.build_command(cli, source, output, a, b, self.output_kind, extra)
                ok, message = self._run(argv, wm, done_before)
                done_before += b - a + 1
                wm.progress_update(done_before)
                if not ok:
                    self.report({"ERROR"}, f"{strip.name}: {message}")
                    return {"CANCELLED"} if not added else {"FINISHED"}
                added.append(self._add_strip(se, strip, output, a, b, first, last))
        finally:
            wm.progress_end()
        self.report({"INFO"}, f"alphagan-video: added {len(added)} strip(s): " + ", ".join(s.name for s in added))
        return {"FINISHED"}

    @staticmethod
    def _run(argv, wm, done_before):
        """Run the CLI, feeding its tqdm counter into the window-manager progress."""
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)  # Blender's own Python paths must not leak into the CLI's Python
        env.pop("PYTHONHOME", None)
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        except OSError as exc:
            return False, f"cannot start {argv[0]}: {exc}"
        text = ""
        while True:
            chunk = proc.stderr.read1(4096) if hasattr(proc.stderr, "read1") else proc.stderr.read(4096)
            if not chunk:
                break
            text = (text + chunk.decode("utf-8", "replace"))[-8192:]
            counter = core.parse_progress(text)
            if counter is not None:
                wm.progress_update(done_before + counter[0])
        code = proc.wait()
        return (code == 0), core.last_error(text)

    def _add_strip(self, se, source_strip, output, a, b, first, last):
        place = core.placement(source_strip.frame_start, a, first, last, b)
        occupied = [(s.channel, s.frame_final_start, s.frame_final_end) for s in se.strips_all]
        channel = core.free_channel(occupied, source_strip.channel, source_strip.frame_final_start,
                                    source_strip.frame_final_end)
        strip = se.strips.new_movie(name=f"{source_strip.name} alphagan", filepath=output, channel=channel,
                                    frame_start=place["frame_start"])
        strip.frame_offset_start = place["frame_offset_start"]
        strip.frame_offset_end = place["frame_offset_end"]
        if self.output_kind == "rgba":
            strip.alpha_mode = "STRAIGHT"  # ProRes 4444 from alphagan-video is unpremultiplied
            strip.blend_type = "ALPHA_OVER"
        else:
            strip.blend_type = "REPLACE"
        strip.select = False
        return strip


def _menu(self, context):
    self.layout.separator()
    self.layout.operator(SEQUENCER_OT_alphagan_matte.bl_idname, icon="IMAGE_ALPHA")


_CLASSES = (ALPHAGAN_AP_preferences, SEQUENCER_OT_alphagan_matte)


def register():
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.SEQUENCER_MT_strip.append(_menu)


def unregister():
    bpy.types.SEQUENCER_MT_strip.remove(_menu)
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
