"""Upstreams this toolkit builds itself (hand-crafted features, utterance embeddings), usable by name
like s3prl's hub upstreams: :mod:`.hub` lists them."""
