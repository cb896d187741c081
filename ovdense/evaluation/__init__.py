from .synthetic import dense_zero_shot, image_zero_shot

__all__ = ['image_zero_shot', 'dense_zero_shot']
