from .text_encoder import (SYNONYM_RULES, ClassEmbeddings, OVTextEncoder, TextEmbeddingCache,
                           TextSideMixin, build_text_encoder, encode_queries,
                           reduce_synonyms)

__all__ = ['OVTextEncoder', 'ClassEmbeddings', 'TextEmbeddingCache', 'encode_queries', 'SYNONYM_RULES', 'TextSideMixin', 'reduce_synonyms', 'build_text_encoder']
