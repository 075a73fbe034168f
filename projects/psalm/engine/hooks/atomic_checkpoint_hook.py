# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Checkpoints that a kill during the save cannot corrupt."""
import glob
import os
import os.path as osp
import shutil
from typing import Optional

from mmengine.dist import barrier, is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook

from mmdet.registry import HOOKS

__all__ = ['AtomicCheckpointHook', 'atomic_write_bytes', 'fsync_replace']

TMP_SUFFIX = '.tmp'


def fsync_replace(tmp_path: str, path: str) -> None:
    """Flush ``tmp_path`` to disk and rename it to ``path`` atomically.

    ``os.replace`` within one directory is atomic on POSIX: readers see the
    old file or the complete new one, never a partial one. The directory is
    synced too, so the rename survives a power loss.

    Args:
        tmp_path (str): The complete temporary file (same directory).
        path (str): The final path (replaced if it exists).
    """
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp_path, path)
    dir_fd = os.open(osp.dirname(osp.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_bytes(data: bytes, path: str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    Args:
        data (bytes): The content.
        path (str): The destination.
    """
    tmp_path = _tmp_path(path)
    with open(tmp_path, 'wb') as f:
        f.write(data)
    fsync_replace(tmp_path, path)


def _tmp_path(path: str) -> str:
    """The temporary sibling of ``path``: ``dir/.name.tmp``."""
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}{TMP_SUFFIX}')


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook``, with saves that a kill cannot corrupt.

    mmengine writes ``iter_k.pth`` in place, then ``last_checkpoint``, and
    deletes the oldest kept checkpoint *before* writing the new one; a run
    killed during a save can leave a truncated ``iter_k.pth`` that
    ``last_checkpoint`` (or ``--resume``) points to, or no loadable
    checkpoint at all with ``max_keep_ckpts=1``. This hook instead, on the
    main process:

    1. writes the checkpoint to ``.iter_k.pth.tmp`` in the same folder,
       fsyncs it and renames it to ``iter_k.pth`` (atomic);
    2. only then rewrites ``last_checkpoint`` the same way;
    3. only then deletes checkpoints beyond ``max_keep_ckpts``.

    A kill at any point therefore leaves ``last_checkpoint`` naming a
    complete checkpoint (the new or the previous one). Leftover ``.tmp``
    files of a killed save are removed (and logged) when training starts.
    Checkpoint folders (``FlexibleRunner`` with DeepSpeed, written by every
    rank) are renamed the same way once all ranks have written them.

    Arguments are those of :class:`mmengine.hooks.CheckpointHook`. Only
    local folders are supported (the atomic rename needs a file system).

    Raises:
        ValueError: ``out_dir`` is not on the local file system.
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if not isinstance(self.file_backend, LocalBackend):
            raise ValueError(
                'AtomicCheckpointHook writes checkpoints by an atomic rename '
                f'on a local file system, but out_dir {self.out_dir!r} uses '
                f'{type(self.file_backend).__name__}; use CheckpointHook for '
                'remote storage')
        if is_main_process():
            stale = sorted(
                glob.glob(_tmp_path(osp.join(
                    self.out_dir, self.filename_tmpl.format('*')))) +
                glob.glob(_tmp_path(osp.join(runner.work_dir,
                                             'last_checkpoint'))))
            for path in stale:
                if osp.isdir(path):  # a DeepSpeed checkpoint folder
                    shutil.rmtree(path)
                else:
                    os.remove(path)
            if stale:
                runner.logger.warning(
                    'AtomicCheckpointHook: removed the unfinished checkpoint '
                    f'files of an interrupted save: {stale}')

    def _save_checkpoint_with_step(self, runner, step: int,
                                   meta: dict) -> None:
        """Save ``step``, point ``last_checkpoint`` to it, then prune."""
        expired: Optional[int] = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                expired = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        # every rank calls it (model-parallel savers gather inside); the
        # Runner writes one file on the main process, a DeepSpeed strategy
        # a folder on every rank: rename only when all ranks are done
        tmp_filename = osp.basename(_tmp_path(self.last_ckpt))
        runner.save_checkpoint(
            self.out_dir,
            tmp_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        barrier()
        if is_main_process():
            self._publish(runner, tmp_filename, expired)
        # every rank returns once the checkpoint is in place
        barrier()

    def _publish(self, runner, tmp_filename: str,
                 expired: Optional[int]) -> None:
        """Rename the written checkpoint, update last_checkpoint, prune."""
        fsync_replace(osp.join(self.out_dir, tmp_filename), self.last_ckpt)
        atomic_write_bytes(self.last_ckpt.encode(),
                           osp.join(runner.work_dir, 'last_checkpoint'))
        if expired is not None:
            old = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(expired))
            if self.file_backend.isfile(old):
                self.file_backend.remove(old)
            elif self.file_backend.isdir(old):
                self.file_backend.rmtree(old)
