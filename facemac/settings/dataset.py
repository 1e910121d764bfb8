"""``dataset.*`` (conf/dataset/) and each ``targets.<name>`` entry (conf/targets/dataset/): one on-disk dataset.

The keys depend on the format (facemac/data/registry.py reads them), so one schema lists every key a reader knows,
and only those a config sets are recorded (``Entry``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional, Union

from pydantic import Field

from facemac.settings.base import Entry

FORMATS = ("celeba", "maadface", "folders", "filelist", "recordio", "labels_csv")
Format = Literal["celeba", "maadface", "folders", "filelist", "recordio", "labels_csv"]
Geometry = Literal["arcface_112", "loose", "detect", "unknown"]
Align = Literal["arcface", "resize"]
Group = Literal["real", "synthetic"]


class DatasetSettings(Entry):
    """A labelled training set or an annotation target; see docs/datasets.md for each format's keys."""

    unlisted: ClassVar[frozenset[str]] = frozenset({"demo_params", "extensions", "labels"})  # optional reader options

    name: Optional[str] = None
    format: Optional[Format] = None
    root: Optional[str] = None
    file: Optional[str] = None            # filelist / labels_csv: the list or CSV
    attributes: Optional[list[str]] = None
    geometry: Optional[Geometry] = None
    align: Optional[Align] = None
    demo: bool = False                    # dataset=demo: generate the demo tree when root is null
    demo_params: Optional[dict[str, Any]] = None
    csv: Optional[str] = None             # maadface: the label file
    images_dir: Optional[str] = None      # maadface: the VGGFace2 images folder
    val_fraction: Optional[float] = Field(None, ge=0, lt=1)
    test_fraction: Optional[float] = Field(None, ge=0, lt=1)
    seed: Optional[int] = None
    landmarks: Union[str, list[str], bool, None] = None   # auto | a file | files | null/false
    max_missing_landmarks: Optional[float] = Field(None, ge=0, le=1)
    depth: Optional[int] = Field(None, ge=0)  # folders: identity folder depth
    extensions: Optional[list[str]] = None
    labels: Optional[str] = None          # folders: a label CSV beside the identity folders
    group: Optional[Group] = None         # targets: real | synthetic


TargetSettings = DatasetSettings
