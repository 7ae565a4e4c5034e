"""Cinder's shipped fake driver, with two things the pool's tests need from a real backend.

- extend_volume: the shipped FakeLoggingVolumeDriver inherits LVM's, which calls a method its
  fake LVM lacks, so every extend ends in `error_extending`. Here it succeeds, as on Ceph.
- a slow create from snapshot, like Ceph with rbd_flatten_volume_from_snapshot = True: the
  number of seconds in the file named by $WARMPOOL_CREATE_DELAY_FILE (absent or empty means no
  delay). Tests write the file to keep volumes in `creating` for a while.
"""
import os
import time

from cinder.tests import fake_driver


class WarmPoolFakeDriver(fake_driver.FakeLoggingVolumeDriver):
    DELAY_FILE = os.environ.get('WARMPOOL_CREATE_DELAY_FILE', '')

    def _delay(self):
        try:
            with open(self.DELAY_FILE) as f:
                seconds = float(f.read().strip() or 0)
        except (OSError, ValueError):
            seconds = 0
        if seconds > 0:
            time.sleep(seconds)  # green under cinder-volume's eventlet: other creates go on

    def create_volume_from_snapshot(self, volume, snapshot):
        self._delay()
        return super().create_volume_from_snapshot(volume, snapshot)

    def extend_volume(self, volume, new_size):
        pass
