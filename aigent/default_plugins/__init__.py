"""Plugins that ship with aigent, loaded through the same entry points as everyone else's."""
