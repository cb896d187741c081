'''Datasets. ``import ovdense.datasets`` registers the mmseg datasets below.'''
from .seg import OVCamVidDataset, OVCOCOObjectDataset, OVPascalVOC20Dataset, OVSyntheticSegDataset

__all__ = ['OVCamVidDataset', 'OVCOCOObjectDataset', 'OVPascalVOC20Dataset', 'OVSyntheticSegDataset']
