/**
 * Which volumes of a project are still `creating`, one answer shared by everyone waiting on one.
 *
 * Waiting for a volume by GETting it every poll costs Cinder's API one request per waiter per
 * poll: on Ceph, where a flatten takes minutes, twenty claims creating at once poll it twenty
 * times a second for all that time. Here one `GET /volumes/detail?status=creating` per project
 * answers every waiter that asks while it is fresh. A volume missing from it has left `creating`,
 * and only then does its waiter fetch it on its own to learn what it became.
 */
export class CreatingVolumes {
  private readonly lists = new Map<
    string,
    { startedAt: number; ids: Promise<Set<string> | null> }
  >();

  /**
   * Whether volume `id` of `project` is still `creating`, from a list started no earlier than
   * `notBefore` (when the caller knew the volume existed: an older list cannot contain it) nor
   * more than `freshMs` ago; otherwise `list` is called for a new one. False when the list
   * failed: the caller then fetches the volume itself, and meets the error there.
   */
  async stillCreating(
    project: string,
    id: string,
    opts: { notBefore: number; freshMs: number },
    list: () => Promise<{ id: string }[]>,
  ): Promise<boolean> {
    const now = Date.now();
    let entry = this.lists.get(project);
    if (!entry || entry.startedAt < Math.max(opts.notBefore, now - opts.freshMs)) {
      this.forgetOlderThan(now - 60_000);
      entry = {
        startedAt: now,
        ids: list().then(
          (vs) => new Set(vs.map((v) => v.id)),
          () => null,
        ),
      };
      this.lists.set(project, entry);
    }
    return (await entry.ids)?.has(id) ?? false;
  }

  /** Lists nobody asked for in a while (a project whose volumes are all made). */
  private forgetOlderThan(at: number): void {
    for (const [project, entry] of this.lists) if (entry.startedAt < at) this.lists.delete(project);
  }
}
