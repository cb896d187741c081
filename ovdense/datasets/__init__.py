"""Datasets. ``import ovdense.datasets`` registers the mmseg datasets below."""
from .captions import OVSyntheticCaptionDataset
from .seg import OVCamVidDataset, OVCOCOObjectDataset, OVPascalVOC20Dataset, OVSyntheticSegDataset

__all__ = ['OVSyntheticCaptionDataset', 'OVCamVidDataset', 'OVCOCOObjectDataset', 'OVPascalVOC20Dataset', 'OVSyntheticSegDataset']
