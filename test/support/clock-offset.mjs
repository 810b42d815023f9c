// Preloaded with `node --import` into a sandbox child process: moves its wall clock forward by
// JITV_CLOCK_OFFSET_MS, as if the process had been down that long. Only `Date` moves (timers and
// `performance.now()` do not), so a test can let a task's deadline pass without waiting for it.
const offset = Number(process.env.JITV_CLOCK_OFFSET_MS ?? "0");
const RealDate = Date;

class ShiftedDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(RealDate.now() + offset);
    else super(...args);
  }

  static now() {
    return RealDate.now() + offset;
  }
}

globalThis.Date = ShiftedDate;
