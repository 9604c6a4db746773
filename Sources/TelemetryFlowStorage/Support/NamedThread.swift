import Glibc
internal import CSupport

/// Starts a joinable pthread running `body`, named `name` (at most 15 bytes are kept) so that `top -H`,
/// `perf` and /proc show which thread is the log's.
///
/// `@unchecked Sendable`: `thread` is written once in `init`; `join()` is called by one owner, once.
final class NamedThread: @unchecked Sendable {
    private var thread = pthread_t()

    init(name: String, _ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(name: name, body)).toOpaque()
        pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            _ = tf_set_thread_name(box.name)
            box.body()
            return nil
        }, box)
    }

    func join() { pthread_join(thread, nil) }

    private final class Box {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, _ body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }
}
