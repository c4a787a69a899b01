"""Test-time views by name: plain data without torch, so the command line can offer the modes.

A mode is a list of view groups: the views of a group are averaged, then the groups, with
equal weight. "full" is the face as it is; "crop_*" the four corners and the centre at 7/8
of the side, resized back; "shift_*" the face moved by 5% of its side (2.4 px at 48 px)
with zero fill, as augmentation does; "*_mirror" the view flipped left to right.
"""

TTA_MODES: tuple[str, ...] = ("none", "flip", "ten_crop", "multi_scale", "multi_view")

CROPS = ("crop_tl", "crop_tr", "crop_bl", "crop_br", "crop_c")
SHIFTS = ("shift_right", "shift_left", "shift_down", "shift_up")
_TEN_CROP = CROPS + tuple(f"{c}_mirror" for c in CROPS)
MODE_GROUPS: dict[str, list[tuple[str, ...]]] = {
    "none": [("full",)],
    "flip": [("full", "full_mirror")],
    "ten_crop": [_TEN_CROP],
    "multi_scale": [("full", "full_mirror"), _TEN_CROP],
    "multi_view": [("full", "full_mirror"), _TEN_CROP, SHIFTS + tuple(f"{s}_mirror" for s in SHIFTS)],
}
