"""Datasets. Importing this package registers the mmseg / CLIPSelf datasets (``import ovdense.models``
does); the detection datasets (``ovdense.datasets.det``) import mmdet and are registered by
``import ovdense.detection``."""
from .captions import OVSyntheticCaptionDataset
from .clipself import OVCLIPSelfDataset
from .seg import OVCamVidDataset, OVCOCOObjectDataset, OVPascalVOC20Dataset, OVSyntheticSegDataset
from .views import OVSyntheticViewsDataset

__all__ = ['OVSyntheticCaptionDataset', 'OVCLIPSelfDataset', 'OVCamVidDataset', 'OVCOCOObjectDataset',
           'OVPascalVOC20Dataset', 'OVSyntheticSegDataset', 'OVSyntheticViewsDataset']
