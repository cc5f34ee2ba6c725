"""Recordings: loading through neo, shipped real recordings. Built in the recordings issue."""
