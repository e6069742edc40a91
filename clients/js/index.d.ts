// Types for chat-cluster-client (hand-written; the source is plain ES modules).

/** A chat message as the cluster stored it (docs/PROTOCOL.md, `message`). */
export interface Message {
  type: 'message';
  room: string;
  nickname: string;
  message: string;
  /** The room's sequence number: from 1, no holes, per epoch. */
  seq: number;
  /** Milliseconds since the Unix epoch, set by the cluster. */
  ts: number;
}

export interface Member {
  nickname: string;
  /** When the member joined (ms since the Unix epoch), if known. */
  since?: number;
}

export interface Limits {
  message_bytes: number;
  frame_bytes: number;
  rate_per_sec: number;
  rate_burst?: number;
  joins_per_sec?: number;
  rooms: number;
  /** Members per page of a member list (big rooms). */
  members_page?: number;
  /** Rooms of more members than this get joins and leaves as presence_diff. */
  presence_batch_above?: number;
  presence_tick_ms?: number;
  [name: string]: number | undefined;
}

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'waiting' | 'closed';

export interface StateEvent {
  state: ConnectionState;
  /** Failed attempts since the last stable connection. */
  attempt: number;
  /** The gateway's id (from `welcome`) while open. */
  gateway: string | null;
  /** The last close code (0 when the socket was given up by the client). */
  closeCode: number;
  /** When the next attempt starts (ms since the Unix epoch), while waiting. */
  retryAt: number;
  retryInMs?: number;
  url?: string;
}

export interface JoinedEvent {
  room: string;
  nickname: string;
  /** The room's latest seq when joined. */
  seq: number;
  epoch: string;
  /** Every member, or in a room of more than limits.members_page a first page (see `more`). */
  members: Member[];
  /** The room's member count (null from a gateway that sends none and a list that is not whole). */
  count: number | null;
  /** More members than `members` holds: page them with loadMoreMembers(). */
  more: boolean;
  /** True when this join continued an earlier one (reconnect, or since/epoch given). */
  rejoin: boolean;
  /** On a rejoin: whether everything missed was recovered. null on a first join. */
  recovered: boolean | null;
  /** On a rejoin that could not recover: what the app showed no longer applies; start over. */
  reset: boolean;
}

export interface RecoveredEvent {
  room: string;
  recovered: boolean;
  /** How many messages were missed and have just been emitted (source 'history'). */
  missed: number;
  /** The last seq seen before the gap (0 after a reset). */
  afterSeq: number;
}

/** A presence frame (docs/PROTOCOL.md). */
export interface PresenceEvent {
  type: 'presence';
  room: string;
  event: 'join' | 'leave';
  nickname: string;
  reason?: 'left' | 'closed' | 'faulted' | 'timeout' | 'gateway_lost';
  ts: number;
  /** The room's member count right after this event. */
  count?: number;
}

/** One tick's joins and leaves of a big room (or of a room joined with presence 'diff'). */
export interface PresenceDiffEvent {
  room: string;
  count: number | null;
  joins: Member[];
  leaves: { nickname: string; reason?: string; ts?: number }[];
}

/** The room's member list as the client holds it, after any change to it or to the count. */
export interface MembersEvent {
  room: string;
  /** Every member known: joined's, the pages loaded, and the presence since. */
  members: Member[];
  count: number | null;
  /** Pages are left to load (loadMoreMembers): `members` is not the whole room. */
  more: boolean;
}

/** One page of a member list (membersPage). */
export interface MembersPage {
  members: Member[];
  count: number | null;
  /** Where the next page starts; null after the last. */
  cursor: string | null;
  more: boolean;
}

/** What loadMoreMembers() added. */
export interface MoreMembers {
  /** Members this page added to the list (may be empty while more follow). */
  added: Member[];
  more: boolean;
  count: number | null;
}

export interface LeftEvent {
  room: string;
  /** 'replaced': the nickname joined the room from another session; or the error code of a refused rejoin. */
  reason: string;
  error?: ChatError;
}

export interface QueueStatus {
  /** Messages not sent yet (paced, or waiting for the connection or a rejoin). */
  waiting: number;
  /** Sent and not answered yet. */
  inFlight: number;
  /** True while messages wait only because of the gateway's rate limit. */
  paced: boolean;
  ratePerSec: number;
}

export interface Ack {
  id: string;
  room: string;
  seq: number;
}

export interface MessageMeta {
  /** 'live' as it happened; 'history' recovered by a (re)join; 'gap' fetched to fill a hole. */
  source: 'live' | 'history' | 'gap';
}

export interface SavedRoom {
  room: string;
  nickname: string;
  epoch: string | null;
  since: number;
}

export interface ChatClientEvents {
  state: (e: StateEvent) => void;
  welcome: (frame: { session: string; gateway: string; limits: Limits }) => void;
  joined: (e: JoinedEvent) => void;
  recovered: (e: RecoveredEvent) => void;
  message: (m: Message, meta: MessageMeta) => void;
  presence: (e: PresenceEvent) => void;
  presence_diff: (e: PresenceDiffEvent) => void;
  members: (e: MembersEvent) => void;
  left: (e: LeftEvent) => void;
  ack: (a: Ack) => void;
  /** A message refused as too fast went back into the queue. */
  paced: (e: { id: string; room: string }) => void;
  queue: (s: QueueStatus) => void;
  /** Messages from..to could not be fetched (trimmed): the app may say so. */
  gap: (e: { room: string; from: number; to: number }) => void;
  reconnect: (e: { afterMs: number }) => void;
  /** An error frame that answers no request of ours. */
  error: (e: ChatError) => void;
}

export interface ChatClientOptions {
  /** One WebSocket URL or several, tried in turn (e.g. a balancer, then gateways). */
  urls: string | string[];
  /** The WebSocket class: the browser's by default; in Node pass `ws`'s. */
  WebSocket?: unknown;
  /** join.grace_ms: how long memberships outlive a closed connection (0..10000). Default 0. */
  graceMs?: number;
  /** Messages asked for on a first join. Default 50. */
  historyPage?: number;
  /** Backoff between attempts: half fixed, half random. Defaults 500 ms, capped at 15 s. */
  backoff?: { baseMs?: number; capMs?: number };
  /** Ping after this much silence, give up after pongTimeoutMs more. Defaults 20 s, 10 s. */
  pingEveryMs?: number;
  pongTimeoutMs?: number;
  /** A connection open this long resets the backoff. Default 10 s. */
  stableMs?: number;
  /** At most this many messages waiting; more are rejected with queue_full. Default 1000. */
  maxQueue?: number;
  /** Pace at this share of the announced rate. Default 0.9. */
  paceMargin?: number;
  random?: () => number;
}

/**
 * Codes: the protocol's (`unavailable`, `too_large`, `not_joined`, `forbidden`,
 * `invalid_room`, ...) and the client's own: `not_delivered` (the connection
 * dropped and the recovered history shows it was not stored), `in_doubt` (it
 * dropped and history could not tell), `queue_full`, `disconnected`, `closed`.
 */
export class ChatError extends Error {
  constructor(code: string, message?: string, extra?: object);
  code: string;
  /** On too_large: the limit in bytes. */
  limit?: number;
}

export class ChatClient {
  constructor(options: ChatClientOptions);
  readonly state: ConnectionState;
  readonly limits: Limits;
  readonly gateway: string | null;
  connect(): this;
  close(): void;
  retryNow(): void;
  isOpen(): boolean;
  join(room: string, nickname: string, options?: {
    since?: number; epoch?: string; history?: number;
    /** join.presence: joins and leaves one by one ('events'), as diffs ('diff'), or the count only ('count'). */
    presence?: 'events' | 'diff' | 'count';
  }): Promise<JoinedEvent>;
  leave(room: string): void;
  /** Resolves once stored; the id is available at once as `.id`. */
  send(room: string, text: string): Promise<Ack> & { id: string };
  history(room: string, options?: { before?: number; limit?: number }): Promise<Message[]>;
  /** The member list from the start: the whole room, or in a big room its first page. */
  members(room: string): Promise<Member[]>;
  /** One page from the start or from a page's cursor; merged into the room's list. */
  membersPage(room: string, options?: { cursor?: string }): Promise<MembersPage>;
  /** The next page after joined and the pages loaded so far. */
  loadMoreMembers(room: string): Promise<MoreMembers>;
  /** The room's member count, or null if not known. */
  count(room: string): number | null;
  /** The member list as held now, or null for a room not joined. */
  roomMembers(room: string): Omit<MembersEvent, 'room'> | null;
  snapshot(): SavedRoom[];
  queueStatus(): QueueStatus;
  on<K extends keyof ChatClientEvents>(type: K, fn: ChatClientEvents[K]): () => void;
  once<K extends keyof ChatClientEvents>(type: K, fn: ChatClientEvents[K]): () => void;
  off<K extends keyof ChatClientEvents>(type: K, fn: ChatClientEvents[K]): void;
}

export const SUBPROTOCOL: 'chat.v1';
export const DEFAULT_LIMITS: Readonly<Limits>;
export function isValidRoom(room: unknown): boolean;
export function isValidNickname(nickname: unknown): boolean;
export function utf8Length(text: string): number;
export function backoffDelay(attempt: number, options?: { baseMs?: number; capMs?: number; random?: () => number }): number;
export function hintedDelay(afterMs: number, random?: () => number): number;
export class Pacer {
  constructor(options: { perSec: number; burst?: number; margin?: number; now?: () => number });
  reset(options: { perSec: number; burst?: number; margin?: number }): void;
  take(): boolean;
  waitMs(): number;
  drain(): void;
}
