from .context_decoder import OVContextDecoder
from .text_encoder import (SYNONYM_RULES, ClassEmbeddings, OVTextEncoder, TextEmbeddingCache,
                           TextSideMixin, build_text_encoder, encode_queries,
                           reduce_synonyms)

__all__ = ['OVTextEncoder', 'OVContextDecoder', 'ClassEmbeddings', 'TextEmbeddingCache', 'encode_queries', 'SYNONYM_RULES', 'TextSideMixin', 'reduce_synonyms', 'build_text_encoder']
