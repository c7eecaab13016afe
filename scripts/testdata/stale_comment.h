// A planted stale call tree (the negative control of check_comment_names.py):
//   Directory::take_fresh_block -> BlockPool::acquire      (both exist)
//   Directory::release_block    -> purge_idle()            (neither does)
