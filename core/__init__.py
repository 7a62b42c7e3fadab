"""What several packages share, once: the call record, the store and its migrations, settings, the API-key
parser. It imports none of the other callscope packages; they all may import it."""
