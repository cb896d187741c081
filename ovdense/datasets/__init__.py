"""Datasets. ``import ovdense.datasets`` registers the mmseg datasets below."""
from .captions import OVSyntheticCaptionDataset
from .clipself import OVCLIPSelfDataset
from .det import OVCocoDataset, OVLVISV1Dataset
from .seg import OVCamVidDataset, OVCOCOObjectDataset, OVPascalVOC20Dataset, OVSyntheticSegDataset
from .views import OVSyntheticViewsDataset

__all__ = ['OVCocoDataset', 'OVLVISV1Dataset', 'OVSyntheticCaptionDataset', 'OVCLIPSelfDataset', 'OVCamVidDataset', 'OVCOCOObjectDataset', 'OVPascalVOC20Dataset', 'OVSyntheticSegDataset', 'OVSyntheticViewsDataset']
