/**
 * The float heap: one shared WebAssembly.Memory holding every float32 tensor of the engine, so the
 * WebAssembly kernels read and write tensors in place and worker threads see the same bytes.
 *
 * Allocation is a bump pointer over 64-byte aligned blocks plus a free list keyed by block size
 * (the engine allocates the same shapes over and over, so exact-size reuse is enough). Blocks are
 * zero-filled when handed out, like `new Float32Array(n)`. The memory grows on demand; growing a
 * shared memory never detaches old views, but `memory.buffer` then returns a new
 * SharedArrayBuffer object, so `owns` remembers every buffer object the memory has had.
 * The first 64 KiB are reserved (the kernel module's own statics, and offset 0 is never a tensor).
 * Each thread also gets a scratch block for packing, grown on demand by the calling thread.
 */

const PAGE = 65536;
const ALIGN = 64;
const RESERVED = PAGE;

type HeapArray = Float32Array | Int32Array;

export interface HeapOptions {
  /** Initial size in bytes (rounded up to 64 KiB pages). Default 16 MiB. */
  initialBytes?: number;
  /** Hard limit in bytes; allocation beyond it throws. Default and maximum 4 GiB (wasm32). */
  maximumBytes?: number;
}

export class Heap {
  readonly memory: WebAssembly.Memory;
  private readonly maxPages: number;
  private top = RESERVED;
  private inUse = 0;
  private readonly live = new Map<number, { size: number; view: HeapArray }>(); // by byteOffset
  private readonly freeBySize = new Map<number, number[]>(); // block bytes -> free byteOffsets
  private readonly buffers = new Set<ArrayBufferLike>();
  private readonly scratchBlocks: Float32Array[] = [];

  constructor(opts: HeapOptions = {}) {
    const initialPages = Math.max(2, Math.ceil((opts.initialBytes ?? 16 << 20) / PAGE));
    this.maxPages = Math.min(65536, Math.floor((opts.maximumBytes ?? 4 * 2 ** 30) / PAGE));
    if (initialPages > this.maxPages) {
      throw new Error(`Heap: initialBytes ${opts.initialBytes} exceeds maximumBytes ${opts.maximumBytes}`);
    }
    this.memory = new WebAssembly.Memory({ initial: initialPages, maximum: this.maxPages, shared: true });
    this.buffers.add(this.memory.buffer);
  }

  /** A zero-filled float32 array of n elements on the heap. */
  f32(n: number): Float32Array {
    return this.alloc(n, Float32Array, "f32");
  }

  /** A zero-filled int32 array of n elements on the heap. */
  i32(n: number): Int32Array {
    return this.alloc(n, Int32Array, "i32");
  }

  /** Returns an array obtained from f32/i32 (that very object, not a subarray) to the heap. */
  free(a: HeapArray): void {
    const block = this.live.get(a.byteOffset);
    if (block === undefined || block.view !== a) {
      throw new Error(
        `Heap.free: array at byteOffset ${a.byteOffset} is not a live heap block (freed twice, or a subarray?)`,
      );
    }
    const size = block.size;
    this.live.delete(a.byteOffset);
    this.inUse -= size;
    let list = this.freeBySize.get(size);
    if (list === undefined) this.freeBySize.set(size, (list = []));
    list.push(a.byteOffset);
  }

  /** True when `a` views this heap's memory (any buffer object the memory has had). */
  owns(a: ArrayBufferView): boolean {
    return this.buffers.has(a.buffer);
  }

  /** Bytes held by live blocks (rounded up to 64-byte blocks; free-list blocks not counted). */
  bytesInUse(): number {
    return this.inUse;
  }

  /**
   * Scratch block of at least n floats private to `thread` (0 = the calling thread, 1.. = workers),
   * grown on demand. Only the thread that owns the heap may call this (it may allocate).
   */
  scratch(thread: number, n: number): Float32Array {
    const cur = this.scratchBlocks[thread];
    if (cur !== undefined && cur.length >= n) return cur;
    if (cur !== undefined) this.free(cur);
    const block = this.f32(Math.max(n, cur === undefined ? 0 : cur.length * 2));
    this.scratchBlocks[thread] = block;
    return block;
  }

  private buffer(): ArrayBufferLike {
    const b = this.memory.buffer;
    this.buffers.add(b);
    return b;
  }

  private alloc<T extends HeapArray>(
    n: number,
    make: new (b: ArrayBufferLike, off: number, n: number) => T,
    what: string,
  ): T {
    if (!Number.isInteger(n) || n < 0) throw new Error(`Heap.${what}: invalid length ${n}`);
    const bytes = n * 4;
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    const reused = this.freeBySize.get(size)?.pop();
    let offset: number;
    if (reused !== undefined) {
      offset = reused;
      new Uint8Array(this.buffer(), offset, size).fill(0);
    } else {
      offset = this.top;
      this.ensure(offset + size, what, bytes);
      this.top += size; // fresh memory from grow() is already zero
    }
    const view = new make(this.buffer(), offset, n); // after ensure(): the buffer may be new
    this.live.set(offset, { size, view });
    this.inUse += size;
    return view;
  }

  private ensure(end: number, what: string, bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const maxBytes = this.maxPages * PAGE;
    if (end > maxBytes) {
      throw new Error(`Heap.${what}: out of memory allocating ${bytes} bytes (heap limit ${maxBytes} bytes)`);
    }
    // Grow by at least half the current size so a sequence of allocations grows rarely.
    const wantPages = Math.min(
      this.maxPages,
      Math.max(Math.ceil(end / PAGE), Math.ceil((have * 1.5) / PAGE)),
    );
    this.memory.grow(wantPages - have / PAGE);
    this.buffers.add(this.memory.buffer);
  }
}
