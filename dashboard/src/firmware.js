// Firmware rollouts (GET /api/v1/firmware): pure helpers for the overview's firmware section.

/** The states of a terminal's update, in the order of an update. */
export const UPDATE_STATES = ['offered', 'downloading', 'installing', 'installed', 'refused', 'rolled_back'];

/** A rollout still under way: some terminal is neither installed, refused nor rolled back. */
export function isUnderWay(rollout) {
  return ['offered', 'downloading', 'installing'].some((s) => (rollout.states[s] || 0) > 0);
}

/** A rollout's counts in update order: [[state, n], ...], only states with terminals. */
export function stateCounts(rollout) {
  return UPDATE_STATES.filter((s) => rollout.states[s]).map((s) => [s, rollout.states[s]]);
}

/** A target's progress in whole percent (downloaded bytes; 100 once downloaded). */
export function targetPercent(target) {
  if (target.state === 'offered' || target.state === 'refused') return 0;
  if (target.state !== 'downloading') return 100;
  return target.size > 0 ? Math.floor((100 * Math.min(target.offset, target.size)) / target.size) : 0;
}

/** Every terminal's row: its id, the firmware its node reports, and its update if any. */
export function firmwareRows(terminals, targets) {
  const byId = new Map(targets.map((tg) => [tg.terminal, tg]));
  return terminals
    .map((term) => ({ id: term.id, running: term.status?.firmware ?? null, target: byId.get(term.id) || null }))
    .sort((a, b) => a.id.localeCompare(b.id));
}
