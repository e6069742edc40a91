// The chat cluster's client library: ES module, no DOM, for browsers and
// Node (pass the `ws` package's WebSocket). See ../README.md.
export { ChatClient, ChatError } from './client.js';
export {
  SUBPROTOCOL, DEFAULT_LIMITS, isValidRoom, isValidNickname, utf8Length, backoffDelay, hintedDelay, Pacer,
} from './rules.js';
