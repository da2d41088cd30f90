/* The agent console, built into /console/console.js (python -m infra.bundle): these files
 * share one closure, in the order infra/bundle.py lists them. This one holds what every view
 * reads: the page's elements, the agent, the queue, the chats and the selection.
 *
 * Uses /widget/chatlink.js for the socket (reconnect, outbox, resync). Every `welcome` (first
 * connect and each reconnect) rebuilds the state: agent, queue, chats, snippets; transcripts
 * sync after their last seq and context and notes are asked for again (link.js).
 *
 * The agent token lives in sessionStorage ("ctc.agent.token"): closing the tab signs out.
 * Everything people wrote (messages, names, pages, notes) is rendered with textContent.
 */

// Deployed behind CloudFront, `make deploy` writes /console/config.js with the API
// addresses; locally the page is served by the stand-in, same origin for everything.
const DEPLOYED = window.ChatConsoleConfig || {};

const { Link, Transcript, Typing, TypingIndicator, el, storage, apiUrl,
        formatTime, beep, wakeAudio, room, MAX_TEXT_CHARS } = window.ChatLink;

const TOKEN_KEY = 'ctc.agent.token';
const TITLE = 'Agent console';
const session = storage('session');

const $ = (id) => document.getElementById(id);
const loginSection = $('login');
const loginForm = $('login-form');
const loginAgent = $('login-agent');
const loginPassword = $('login-password');
const loginSubmit = $('login-submit');
const loginError = $('login-error');
const app = $('app');
const agentName = $('agent-name');
const connState = $('conn-state');
const shiftToggle = $('shift-toggle');
const awayToggle = $('away-toggle');
const alertsButton = $('alerts');
const signOutButton = $('sign-out');
const chatsCount = $('chats-count');
const offersBox = $('offers');
const queueList = $('queue');
const queueCount = $('queue-count');
const convList = $('conversations');
const convTitle = $('conv-title');
const convClose = $('conv-close');
const transferOpen = $('transfer-open');
const transferBox = $('transfer-box');
const transferTo = $('transfer-to');
const transferNote = $('transfer-note');
const transferSend = $('transfer-send');
const transferError = $('transfer-error');
const transferState = $('transfer-state');
const transcriptLabel = $('transcript-label');
const transcriptBox = $('close-transcript');
const transcriptText = $('transcript-text');
const transcriptSend = $('conv-transcript');
const ratingBox = $('conv-rating');
const messages = $('messages');
const notice = $('notice');
const replyForm = $('reply-form');
const replyInput = $('reply-input');
const replySend = $('reply-send');
const snippetMenu = $('snippet-menu');
const toasts = $('toasts');
const indicator = new TypingIndicator($('typing'));

let token = session.get(TOKEN_KEY);
let link = null;
let typing = null;
let me = null; // the agent, as the server describes them
let site = null;
let onShift = false;
let away = false;
let shiftBusy = false;
let queue = [];
let snippets = [];
const convs = new Map(); // id -> {id, summary, transcript, lastRead, endedBy, context, notes, ...}
const offers = new Map(); // conversation id -> transfer_offer frame
let selected = null;
let acceptWanted = null;
let signingOut = false;
let welcomed = false;
let timers = [];
let view = 'chats';
const viewHooks = {};

const OPEN = new Set(['queued', 'assigned', 'active']);
const isOpen = (c) => Boolean(c) && OPEN.has(c.summary.status);
