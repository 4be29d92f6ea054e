// Package relay brings the events that other nodes store in a shared
// store (PostgreSQL) to this node's subscribers.
//
// A node's engine publishes the events of the executions it runs to its
// own hub; a subscriber on another node would hear nothing. The relay
// closes that gap: a notice (conveyor.Notice) says that an execution has
// new events up to some seq; if the execution has subscribers here, the
// relay reads the stored events after the newest seq they may already
// have and publishes them to the hub, in seq order.
//
// Most notices carry their event: the Announcer of the node that
// published it sends every event, stored or not, with the seq it
// announced before for the execution (Prev). The relay publishes such an
// event as it comes when the subscribers have what comes before it (the
// next seq, or Prev), and reads the store only when they may miss
// something (an announcement lost). Status events are stored before they
// are published, so what a subscriber's snapshot lacks is always in the
// store or in a later announcement. Notices are hints and
// can be lost, so the relay also re-reads every watched execution once a
// poll interval (skipping those that run on this node), and all of them
// after a NoticeResync.
//
// Executions are spread over a few shards by a hash of their id, each
// served by one goroutine: several executions catch up at once, and one
// execution's events are still published in order.
//
// # Where to read from
//
// A stream subscribes to the hub first and then reads a snapshot from the
// store, at some seq N; it then needs every status event after N (it
// skips what it already has). The relay must therefore read after a seq
// no higher than N, without being told N. It keeps, per watched
// execution, a held seq, and reads after the higher of that and the
// newest seq the hub published for the execution:
//
//   - Every seq a notice carries is stored, or announced progress, when
//     the notice arrives (status events are stored first). The
//     relay remembers the newest per execution (bounded; forgetting one
//     only costs a longer first read).
//   - The hub calls the relay when a subscription is made, before the
//     subscriber reads its snapshot. The first subscriber's call sets the
//     held seq to the newest seq known to be stored then, which is no
//     higher than that subscriber's N, nor than any later subscriber's.
//   - After publishing events up to some seq the relay raises the held
//     seq to it: a subscriber that came before got those events from the
//     hub, one that comes later finds them in its snapshot.
//   - Once an execution has no subscribers, the poll forgets its held
//     seq; a later subscriber starts afresh.
//
// So a new subscriber costs the relay no store read of its own, and the
// first read after it starts about where its snapshot ended instead of at
// the execution's first event.
package relay
