/*! click-to-chat agent console (infra/bundle.py): built from console/src/, do not edit */
(function() {
    "use strict";
    const DEPLOYED = window.ChatConsoleConfig || {};
    const {Link, Transcript, Typing, TypingIndicator, el, storage, apiUrl, formatTime, beep, wakeAudio, room, MAX_TEXT_CHARS} = window.ChatLink;
    const TOKEN_KEY = "ctc.agent.token";
    const TITLE = "Agent console";
    const session = storage("session");
    const $ = id => document.getElementById(id);
    const loginSection = $("login");
    const loginForm = $("login-form");
    const loginAgent = $("login-agent");
    const loginPassword = $("login-password");
    const loginSubmit = $("login-submit");
    const loginError = $("login-error");
    const app = $("app");
    const agentName = $("agent-name");
    const connState = $("conn-state");
    const shiftToggle = $("shift-toggle");
    const awayToggle = $("away-toggle");
    const alertsButton = $("alerts");
    const signOutButton = $("sign-out");
    const chatsCount = $("chats-count");
    const offersBox = $("offers");
    const queueList = $("queue");
    const queueCount = $("queue-count");
    const convList = $("conversations");
    const convTitle = $("conv-title");
    const convClose = $("conv-close");
    const transferOpen = $("transfer-open");
    const transferBox = $("transfer-box");
    const transferTo = $("transfer-to");
    const transferNote = $("transfer-note");
    const transferSend = $("transfer-send");
    const transferError = $("transfer-error");
    const transferState = $("transfer-state");
    const transcriptLabel = $("transcript-label");
    const transcriptBox = $("close-transcript");
    const transcriptText = $("transcript-text");
    const transcriptSend = $("conv-transcript");
    const ratingBox = $("conv-rating");
    const messages = $("messages");
    const notice = $("notice");
    const replyForm = $("reply-form");
    const replyInput = $("reply-input");
    const replySend = $("reply-send");
    const snippetMenu = $("snippet-menu");
    const toasts = $("toasts");
    const indicator = new TypingIndicator($("typing"));
    let token = session.get(TOKEN_KEY);
    let link = null;
    let typing = null;
    let me = null;
    let site = null;
    let onShift = false;
    let away = false;
    let shiftBusy = false;
    let queue = [];
    let snippets = [];
    const convs = new Map;
    const offers = new Map;
    let selected = null;
    let acceptWanted = null;
    let signingOut = false;
    let welcomed = false;
    let timers = [];
    let view = "chats";
    const viewHooks = {};
    const OPEN = new Set([ "queued", "assigned", "active" ]);
    const isOpen = c => Boolean(c) && OPEN.has(c.summary.status);
    function say(text) {
        notice.textContent = text || "";
    }
    const OFFLINE = "You're offline; try again when the connection is back.";
    function characters(n) {
        return n.toLocaleString("en") + (n === 1 ? " character" : " characters");
    }
    function lengthCheck(box, count, err, what, frame, field) {
        let timer = null;
        let long = "";
        const check = submit => {
            clearTimeout(timer);
            const n = room(box.value, frame && frame(), field);
            count.textContent = n >= 0 && n < MAX_TEXT_CHARS / 10 ? characters(n) + " left" : "";
            if (submit && n < 0 || !err.textContent || err.textContent === long) {
                err.textContent = long = n < 0 ? what + " too long (" + characters(-n) + " over)" : "";
            }
            return n;
        };
        box.addEventListener("input", () => {
            clearTimeout(timer);
            timer = setTimeout(check, 400);
        });
        return check;
    }
    function toast(text, bad) {
        const node = el("div", {
            class: bad ? "toast bad" : "toast",
            role: bad ? "alert" : "status",
            "data-testid": "toast"
        }, text);
        toasts.append(node);
        setTimeout(() => node.remove(), 8e3);
    }
    function duration(ms) {
        const total = Math.max(0, Math.floor(Number(ms) / 1e3)) || 0;
        const h = Math.floor(total / 3600);
        const m = Math.floor(total % 3600 / 60);
        const s = String(total % 60).padStart(2, "0");
        return h ? h + ":" + String(m).padStart(2, "0") + ":" + s : m + ":" + s;
    }
    function dateTime(ts) {
        const n = Number(ts);
        if (!Number.isFinite(n) || n <= 0) return "";
        return new Date(n).toLocaleString([], {
            day: "numeric",
            month: "short",
            hour: "2-digit",
            minute: "2-digit"
        });
    }
    function tick() {
        const now = Date.now();
        for (const node of document.querySelectorAll("[data-since]")) {
            node.textContent = duration(now - Number(node.getAttribute("data-since")));
        }
        for (const node of document.querySelectorAll("[data-away-since]")) {
            const p = {
                state: "away",
                since: Number(node.getAttribute("data-away-since"))
            };
            node.textContent = presenceText(p);
            node.classList.toggle("away", isAway(p));
        }
        const c = selected ? convs.get(selected) : null;
        if (c && c.context) $("ctx-time").textContent = localTime(c.context.timezone);
    }
    const AWAY_AFTER_MS = 1e4;
    function isAway(p) {
        return Boolean(p && p.state === "away") && Date.now() - Number(p.since) >= AWAY_AFTER_MS;
    }
    function presenceText(p) {
        if (!isAway(p)) return "Visitor online";
        const secs = Math.max(0, Math.floor((Date.now() - Number(p.since)) / 1e3)) || 0;
        return "Visitor left " + (secs < 60 ? "just now" : Math.floor(secs / 60) + " min ago");
    }
    function presenceNode(p) {
        const away = Boolean(p && p.state === "away");
        return el("span", {
            class: isAway(p) ? "presence away" : "presence",
            "data-testid": "presence",
            "data-away-since": away ? Number(p.since) : null
        }, presenceText(p));
    }
    function label(c) {
        const s = c.summary;
        return s.visitor_name || s.email || "Visitor " + String(s.visitor || "").slice(0, 6);
    }
    function pageText(page) {
        if (!page) return "";
        if (typeof page === "string") return page;
        return String(page.title || page.url || "");
    }
    function isSystem(message) {
        return Boolean(message && message.from && message.from.role === "system");
    }
    function webLink(url, text) {
        const safe = typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
        if (!safe) return el("span", {}, text || url || "");
        return el("a", {
            href: safe,
            target: "_blank",
            rel: "noopener noreferrer nofollow",
            title: safe
        }, text || safe);
    }
    const frameHandlers = new Map;
    const refusalHandlers = new Map;
    function on(type, fn) {
        if (!frameHandlers.has(type)) frameHandlers.set(type, []);
        frameHandlers.get(type).push(fn);
    }
    function onRefusal(kind, fn) {
        refusalHandlers.set(kind, fn);
    }
    function onFrame(frame) {
        const c = typeof frame.conversation === "string" ? convs.get(frame.conversation) : null;
        for (const fn of frameHandlers.get(frame.type) || []) fn(frame, c);
        if (leaving.open || handingBack) leavingChanged();
    }
    const send = frame => Boolean(link && link.send(frame));
    function paged(list, frame, field, key, ask) {
        const items = Array.isArray(frame[field]) ? frame[field] : [];
        let out = items;
        if (frame.after !== null && frame.after !== undefined) {
            const seen = new Set(key ? list.map(key) : []);
            out = list.concat(key ? items.filter(i => !seen.has(key(i))) : items);
        }
        if (frame.more && typeof frame.cursor === "string" && frame.cursor) ask(frame.cursor);
        return out;
    }
    function onWelcome(welcome) {
        if (typeof welcome.token === "string") {
            token = welcome.token;
            session.set(TOKEN_KEY, token);
        }
        me = welcome.agent || me;
        site = welcome.site || site;
        onShift = Boolean(me && me.on_shift);
        away = Boolean(me && me.away);
        shiftBusy = false;
        acceptWanted = null;
        if (Array.isArray(welcome.snippets)) snippets = welcome.snippets;
        queue = Array.isArray(welcome.queue) ? welcome.queue : [];
        const current = new Set;
        for (const summary of welcome.conversations || []) {
            const known = convs.get(summary && summary.id);
            const wasOpen = isOpen(known);
            const c = upsert(summary);
            if (!c) continue;
            current.add(c.id);
            if (!welcomed) c.seen = true;
            if (!wasOpen) c.endedBy = null;
            if (welcomed && !wasOpen && isOpen(c)) announceNew(c);
        }
        for (const c of convs.values()) {
            if (!current.has(c.id) && isOpen(c)) {
                c.summary.status = "gone";
                ended(c, null);
            }
            offers.delete(c.id);
            if (isOpen(c)) {
                c.transcript.sync(link, true);
                loadDetails(c);
            }
        }
        if (!selected || !convs.has(selected)) {
            const first = order().find(isOpen);
            selected = first ? first.id : null;
            if (first) first.seen = true;
        }
        welcomed = true;
        const next = welcome.next || {};
        if (typeof next.queue === "string") link.send({
            action: "queue",
            cursor: next.queue
        });
        if (typeof next.snippets === "string") link.send({
            action: "snippets",
            cursor: next.snippets
        });
        refreshInbox();
        link.send({
            action: "status"
        });
        renderHeader();
        renderQueue();
        renderOffers();
        renderConversations();
        renderSelected();
        if (view !== "chats" && viewHooks[view] && viewHooks[view].show) viewHooks[view].show();
        if (!allowed(view)) showView("chats");
    }
    function onError(frame) {
        const ref = typeof frame.ref === "string" ? frame.ref : "";
        const message = typeof frame.message === "string" ? frame.message : "Something went wrong.";
        const [kind, id] = ref.split(":");
        const handler = refusalHandlers.get(kind);
        if (handler && handler(message, id, frame)) return;
        say(message);
    }
    on("error", onError);
    function onState(state, retryMs) {
        if (state === "online") connState.textContent = ""; else if (state === "offline") {
            connState.textContent = "Connection lost. Reconnecting" + (retryMs ? " in " + Math.max(1, Math.round(retryMs / 1e3)) + " s\u2026" : "\u2026");
        }
        renderHeader();
        renderSelected();
    }
    async function api(method, path, body) {
        const headers = {
            Authorization: "Bearer " + token
        };
        if (body !== undefined) headers["Content-Type"] = "application/json";
        try {
            const response = await fetch(apiUrl(path, DEPLOYED.api), {
                method,
                headers,
                cache: "no-store",
                body: body === undefined ? undefined : JSON.stringify(body)
            });
            const data = await response.json().catch(() => null);
            const message = data && data.message || "The server answered " + response.status + ".";
            return {
                ok: response.ok,
                status: response.status,
                body: data,
                message
            };
        } catch (e) {
            return {
                ok: false,
                status: 0,
                body: null,
                message: "Can't reach the server. Check your connection."
            };
        }
    }
    async function download(path, name) {
        try {
            const response = await fetch(apiUrl(path, DEPLOYED.api), {
                headers: {
                    Authorization: "Bearer " + token
                },
                cache: "no-store"
            });
            if (!response.ok) {
                const data = await response.json().catch(() => null);
                return {
                    ok: false,
                    message: data && data.message || "The server answered " + response.status + "."
                };
            }
            const disposition = response.headers.get("Content-Disposition") || "";
            const match = /filename="([^"]+)"/.exec(disposition);
            const url = URL.createObjectURL(await response.blob());
            const link = el("a", {
                href: url,
                download: match ? match[1] : name
            });
            document.body.append(link);
            link.click();
            link.remove();
            setTimeout(() => URL.revokeObjectURL(url), 1e4);
            return {
                ok: true
            };
        } catch (e) {
            return {
                ok: false,
                message: "Can't reach the server. Check your connection."
            };
        }
    }
    function chime(kind) {
        beep(kind === "chat" ? 988 : 660);
    }
    function canNotify() {
        return typeof Notification === "function";
    }
    function updateAlertsButton() {
        alertsButton.hidden = !canNotify() || Notification.permission !== "default";
    }
    function askPermission() {
        wakeAudio();
        if (!canNotify() || Notification.permission !== "default") return;
        try {
            const asked = Notification.requestPermission(updateAlertsButton);
            if (asked && asked.then) asked.then(updateAlertsButton, updateAlertsButton);
        } catch (e) {}
    }
    function notify(title, body, conversation) {
        if (!canNotify() || Notification.permission !== "granted") return;
        if (document.visibilityState === "visible" && document.hasFocus()) return;
        try {
            const n = new Notification(title, {
                body: String(body || "").slice(0, 160),
                tag: conversation || "ctc"
            });
            n.onclick = () => {
                window.focus();
                if (conversation && convs.has(conversation)) {
                    showView("chats");
                    select(conversation);
                }
                n.close();
            };
        } catch (e) {}
    }
    alertsButton.addEventListener("click", askPermission);
    document.addEventListener("pointerdown", wakeAudio, {
        once: true
    });
    function announceNew(c, how) {
        chime("chat");
        notify(how || "New chat", label(c) + (c.summary.preview ? ": " + c.summary.preview : ""), c.id);
    }
    const VIEWS = [ "chats", "visitors", "team", "history", "reports", "settings" ];
    const isAdmin = () => Boolean(me && me.role === "admin");
    const isLead = () => Boolean(me && (me.role === "admin" || me.role === "supervisor"));
    const allowed = name => name === "chats" || name === "visitors" || (name === "settings" ? isAdmin() : isLead());
    function viewFromHash() {
        const name = location.hash.slice(1);
        return VIEWS.includes(name) ? name : null;
    }
    function showView(name) {
        if (!VIEWS.includes(name)) name = "chats";
        if (me && !allowed(name)) name = "chats";
        const before = view;
        view = name;
        for (const v of VIEWS) $("view-" + v).hidden = v !== name;
        for (const button of document.querySelectorAll("#views [data-view]")) {
            button.setAttribute("aria-current", button.getAttribute("data-view") === name ? "page" : "false");
        }
        if (location.hash.slice(1) !== name && app && !app.hidden) history.replaceState(null, "", "#" + name);
        if (before !== name && viewHooks[before] && viewHooks[before].hide) viewHooks[before].hide();
        if (me && viewHooks[name] && viewHooks[name].show) viewHooks[name].show();
    }
    function onView(name, hooks) {
        viewHooks[name] = hooks;
    }
    for (const button of document.querySelectorAll("#views [data-view]")) {
        button.addEventListener("click", () => showView(button.getAttribute("data-view")));
    }
    window.addEventListener("hashchange", () => {
        if (viewFromHash()) showView(viewFromHash());
    });
    const help = $("help");
    $("help-open").addEventListener("click", () => {
        if (typeof help.showModal === "function") help.showModal();
    });
    function showLogin(message) {
        app.hidden = true;
        loginSection.hidden = false;
        loginError.textContent = message || "";
        loginAgent.focus();
    }
    loginForm.addEventListener("submit", async event => {
        event.preventDefault();
        wakeAudio();
        loginError.textContent = "";
        loginSubmit.disabled = true;
        try {
            const response = await fetch(apiUrl("/auth/login", DEPLOYED.api), {
                method: "POST",
                headers: {
                    "Content-Type": "application/json"
                },
                body: JSON.stringify({
                    agent: loginAgent.value.trim(),
                    password: loginPassword.value
                })
            });
            const body = await response.json().catch(() => ({}));
            if (response.ok && typeof body.token === "string") {
                token = body.token;
                session.set(TOKEN_KEY, token);
                loginPassword.value = "";
                startConsole();
            } else if (response.status === 401 || response.status === 403) {
                loginError.textContent = "Wrong agent id or password.";
            } else {
                loginError.textContent = typeof body.message === "string" ? body.message : "Sign-in failed (" + response.status + ").";
            }
        } catch (e) {
            loginError.textContent = "Can't reach the server. Check your connection and try again.";
        } finally {
            loginSubmit.disabled = false;
        }
    });
    function startConsole() {
        loginSection.hidden = true;
        app.hidden = false;
        connState.textContent = "Connecting\u2026";
        updateAlertsButton();
        link = new Link({
            url: DEPLOYED.ws,
            api: DEPLOYED.api,
            storagePrefix: "ctc.console",
            params: () => ({
                token
            }),
            onWelcome,
            onFrame,
            onAck,
            onFailed,
            onState,
            onRefused() {
                signOut("Your session has expired. Please sign in again.");
                return "stop";
            }
        });
        typing = new Typing(link);
        link.start();
        timers.push(setInterval(tick, 1e3));
        timers.push(setInterval(refreshQueue, 1e4));
        timers.push(setInterval(refreshInbox, 3e4));
        showView(viewFromHash() || "chats");
    }
    function signOut(message) {
        if (link) link.stop();
        link = null;
        for (const t of timers) clearInterval(t);
        timers = [];
        token = null;
        session.set(TOKEN_KEY, null);
        me = null;
        site = null;
        onShift = away = false;
        queue = [];
        snippets = [];
        convs.clear();
        offers.clear();
        selected = null;
        signingOut = false;
        welcomed = false;
        showView("chats");
        queueList.replaceChildren();
        inboxList.replaceChildren();
        convList.replaceChildren();
        offersBox.replaceChildren();
        messages.replaceChildren();
        indicator.hide();
        say("");
        document.title = TITLE;
        showLogin(message);
    }
    signOutButton.addEventListener("click", () => {
        if (askBeforeLeaving("signout")) return;
        if (onShift && link && link.send({
            action: "shift",
            on: false
        })) {
            signingOut = true;
            setTimeout(() => {
                if (signingOut) signOut("");
            }, 1500);
        } else {
            signOut("");
        }
    });
    function renderHeader() {
        agentName.textContent = me ? me.name + " (" + me.id + ")" : "";
        agentName.title = agentName.textContent;
        shiftToggle.textContent = onShift ? "On shift" : "Off shift";
        shiftToggle.setAttribute("aria-pressed", onShift ? "true" : "false");
        shiftToggle.title = onShift ? "You get new chats. Click to stop taking new chats." : "You get no new chats. Click to start taking chats.";
        shiftToggle.disabled = shiftBusy || !link || !link.ready;
        awayToggle.setAttribute("aria-pressed", away ? "true" : "false");
        awayToggle.textContent = away ? "Away" : "Available";
        awayToggle.title = away ? "Away: you keep your chats but get no new ones. Click when you are back." : "Available for new chats. Click to step away (you keep your chats).";
        awayToggle.disabled = shiftBusy || !onShift || !link || !link.ready;
        for (const node of document.querySelectorAll("[data-admin]")) node.hidden = !isAdmin();
        for (const node of document.querySelectorAll("[data-lead]")) node.hidden = !isLead();
    }
    shiftToggle.addEventListener("click", () => {
        if (onShift && askBeforeLeaving("shift")) return;
        if (!onShift) askPermission();
        if (!link || !link.send({
            action: "shift",
            on: !onShift,
            ref: "shift"
        })) return;
        shiftBusy = true;
        renderHeader();
    });
    awayToggle.addEventListener("click", () => {
        if (!link || !link.send({
            action: "away",
            on: !away,
            ref: "away"
        })) return;
        shiftBusy = true;
        renderHeader();
    });
    const leaving = $("leaving");
    const leavingList = $("leaving-list");
    const leavingAll = $("leaving-all");
    const leavingError = $("leaving-error");
    const leavingKeep = el("button", {
        type: "button",
        class: "ghost",
        "data-testid": "leaving-keep"
    }, "Go off shift, keep them");
    leavingAll.after(leavingKeep);
    let leavingFor = "signout";
    let handingBack = null;
    let handBackTimer = null;
    const openChats = () => [ ...convs.values() ].filter(isOpen);
    function askBeforeLeaving(mode) {
        if (!openChats().length) return false;
        leavingFor = mode;
        leavingAll.textContent = mode === "signout" ? "Hand all back and sign out" : "Hand all back and go off shift";
        leavingKeep.hidden = mode !== "shift";
        leavingError.textContent = "";
        renderLeaving();
        if (!leaving.open) leaving.showModal();
        return true;
    }
    function renderLeaving() {
        leavingList.replaceChildren(...openChats().map(c => {
            const name = el("span", {}, label(c));
            const transfer = el("button", {
                type: "button",
                class: "ghost",
                "data-testid": "leaving-transfer"
            }, "Transfer");
            transfer.addEventListener("click", () => {
                leaving.close();
                showView("chats");
                select(c.id);
                transferOpen.click();
            });
            const back = el("button", {
                type: "button",
                "data-testid": "leaving-handback"
            }, "Hand back to the line");
            back.addEventListener("click", () => {
                if (!link || !link.send({
                    action: "handback",
                    conversation: c.id,
                    ref: "handback:" + c.id
                })) {
                    leavingError.textContent = OFFLINE;
                }
            });
            const row = el("li", {
                "data-conversation": c.id
            });
            row.append(name, transfer, back);
            return row;
        }));
    }
    function leavingChanged() {
        if (openChats().length) {
            if (leaving.open) renderLeaving();
            return;
        }
        const then = handingBack || (leaving.open ? "stay" : null);
        handingBack = null;
        clearTimeout(handBackTimer);
        if (leaving.open) leaving.close();
        if (then === "signout") signOut(""); else if (then === "shift" && onShift && link) link.send({
            action: "shift",
            on: false,
            ref: "shift"
        });
    }
    function handBackAll() {
        for (const c of openChats()) link.send({
            action: "handback",
            conversation: c.id,
            ref: "handback:" + c.id
        });
        clearTimeout(handBackTimer);
        handBackTimer = setTimeout(() => {
            if (handingBack) {
                handingBack = null;
                leavingError.textContent = leavingError.textContent || "Some chats could not be handed back; try again.";
                renderLeaving();
            }
        }, 8e3);
    }
    leavingAll.addEventListener("click", () => {
        if (!link) {
            leavingError.textContent = OFFLINE;
            return;
        }
        leavingError.textContent = "";
        handingBack = leavingFor;
        if (onShift) link.send({
            action: "shift",
            on: false,
            ref: "shift"
        }); else handBackAll();
    });
    leavingKeep.addEventListener("click", () => {
        leaving.close();
        if (link && link.send({
            action: "shift",
            on: false,
            ref: "shift"
        })) {
            shiftBusy = true;
            renderHeader();
        }
    });
    $("leaving-cancel").addEventListener("click", () => {
        handingBack = null;
        leaving.close();
    });
    window.addEventListener("beforeunload", event => {
        if (!token || !openChats().length) return;
        event.preventDefault();
        event.returnValue = "";
    });
    on("shift", frame => {
        onShift = Boolean(frame.on);
        away = Boolean(frame.away);
        shiftBusy = false;
        if (frame.agent) me = Object.assign({}, me, frame.agent);
        renderHeader();
        if (signingOut && !onShift) signOut(""); else {
            if (!onShift) link.send({
                action: "queue"
            });
            link.send({
                action: "status"
            });
        }
        if (handingBack && !onShift) handBackAll();
    });
    on("requeued", (frame, c) => {
        if (!c) return;
        c.summary = Object.assign({}, c.summary, frame.summary || {}, {
            status: "gone"
        });
        c.goneText = "handed back to the line";
        ended(c, null);
        renderConversations();
        renderSelected();
    });
    const shiftRefused = () => {
        shiftBusy = false;
        renderHeader();
        return false;
    };
    onRefusal("shift", shiftRefused);
    onRefusal("away", shiftRefused);
    onRefusal("handback", message => {
        leavingError.textContent = message;
        return true;
    });
    function renderQueue() {
        const items = queue.filter(item => item && typeof item.conversation === "string");
        queueCount.textContent = items.length ? String(items.length) : "";
        queueList.replaceChildren();
        if (!items.length) {
            queueList.append(el("li", {
                class: "empty"
            }, "Nobody is waiting."));
            return;
        }
        const now = Date.now();
        for (const item of items) {
            const row = el("li", {
                class: "queue-item",
                "data-conversation": item.conversation,
                "data-testid": "queue-item"
            });
            const what = el("span", {
                class: "what"
            });
            const queuedAt = Number(item.queued_at) || now;
            what.append(el("span", {}, "#" + item.position + " \xb7 waiting "), el("span", {
                class: "wait",
                "data-since": queuedAt
            }, duration(now - queuedAt)));
            const where = pageText(item.page);
            if (where) what.append(el("span", {
                class: "where",
                title: item.page.url || where
            }, where));
            if (item.presence) what.append(presenceNode(item.presence));
            what.append(el("span", {
                class: "preview"
            }, item.preview || "No message yet"));
            const accept = el("button", {
                type: "button",
                "data-testid": "accept",
                "data-conversation": item.conversation
            }, "Accept");
            accept.disabled = acceptWanted === item.conversation;
            accept.addEventListener("click", () => acceptChat(item.conversation));
            row.append(what, accept);
            queueList.append(row);
        }
    }
    function refreshQueue() {
        if (link && !onShift && document.visibilityState === "visible") link.send({
            action: "queue"
        });
    }
    function acceptChat(id) {
        wakeAudio();
        if (!link || !link.send({
            action: "accept",
            conversation: id,
            ref: "accept:" + id
        })) {
            say(OFFLINE);
            return;
        }
        acceptWanted = id;
        renderQueue();
    }
    on("queue", frame => {
        queue = paged(queue, frame, "items", i => i.conversation, cursor => link.send({
            action: "queue",
            cursor
        }));
        if (acceptWanted && !queue.some(i => i.conversation === acceptWanted) && !offers.has(acceptWanted)) {
            acceptWanted = null;
        }
        renderQueue();
    });
    onRefusal("accept", () => {
        acceptWanted = null;
        renderQueue();
        return false;
    });
    const inboxList = $("inbox");
    const inboxCount = $("inbox-count");
    let inboxItems = [];
    let inboxCursor = null;
    let takeWanted = null;
    function byMail(c) {
        return c.summary.channel === "email";
    }
    function renderInbox() {
        const items = inboxItems.filter(item => item && typeof item.conversation === "string");
        inboxCount.textContent = items.length ? String(items.length) + (inboxCursor ? "+" : "") : "";
        inboxList.replaceChildren();
        if (!items.length) {
            inboxList.append(el("li", {
                class: "empty"
            }, "No messages."));
            return;
        }
        const now = Date.now();
        for (const item of items) {
            const row = el("li", {
                class: "queue-item",
                "data-conversation": item.conversation,
                "data-testid": "inbox-item"
            });
            const what = el("span", {
                class: "what"
            });
            const at = Number(item.at) || now;
            what.append(el("span", {
                class: "who"
            }, String(item.name || item.email || "Visitor") + " \xb7 "), el("span", {
                class: "wait",
                "data-since": at
            }, duration(now - at)), el("span", {}, " ago"), el("span", {
                class: "preview"
            }, String(item.preview || "")));
            const take = el("button", {
                type: "button",
                "data-testid": "take",
                "data-conversation": item.conversation
            }, "Take");
            take.disabled = takeWanted === item.conversation;
            take.addEventListener("click", () => takeMessage(item.conversation));
            row.append(what, take);
            inboxList.append(row);
        }
        if (inboxCursor) {
            const older = el("button", {
                type: "button",
                class: "link",
                "data-testid": "inbox-more"
            }, "Older messages");
            older.addEventListener("click", () => send({
                action: "inbox",
                cursor: inboxCursor
            }));
            inboxList.append(el("li", {}, older));
        }
    }
    function refreshInbox() {
        if (link && document.visibilityState === "visible") link.send({
            action: "inbox"
        });
    }
    function takeMessage(id) {
        if (!link || !link.send({
            action: "take",
            conversation: id,
            ref: "take:" + id
        })) {
            say(OFFLINE);
            return;
        }
        takeWanted = id;
        renderInbox();
    }
    on("inbox", frame => {
        const items = Array.isArray(frame.items) ? frame.items : [];
        if (frame.after === null || frame.after === undefined) {
            inboxItems = items;
        } else {
            const seen = new Set(inboxItems.map(i => i.conversation));
            inboxItems = inboxItems.concat(items.filter(i => !seen.has(i.conversation)));
        }
        inboxCursor = frame.more && typeof frame.cursor === "string" ? frame.cursor : null;
        if (takeWanted && !inboxItems.some(i => i.conversation === takeWanted)) takeWanted = null;
        renderInbox();
    });
    onRefusal("take", () => {
        takeWanted = null;
        refreshInbox();
        return false;
    });
    window.addEventListener("focus", refreshInbox);
    function renderOffers() {
        offersBox.replaceChildren();
        for (const offer of offers.values()) {
            const from = offer.from && offer.from.name || "A colleague";
            const s = offer.summary || {};
            const box = el("div", {
                class: "offer",
                "data-testid": "transfer-offer",
                "data-conversation": offer.conversation
            });
            box.append(el("p", {}, from + " wants to hand you a chat"), el("p", {
                class: "preview"
            }, (s.visitor_name || s.email || "Visitor " + String(s.visitor || "").slice(0, 6)) + (s.preview ? " \xb7 " + s.preview : "")));
            if (offer.note && offer.note.text) {
                box.append(el("p", {
                    class: "note",
                    "data-testid": "offer-note"
                }, offer.note.text));
            }
            const row = el("div", {
                class: "row"
            });
            const yes = el("button", {
                type: "button",
                class: "accept",
                "data-testid": "offer-accept"
            }, "Accept");
            const no = el("button", {
                type: "button",
                "data-testid": "offer-decline"
            }, "Decline");
            yes.addEventListener("click", () => answerOffer(offer.conversation, true));
            no.addEventListener("click", () => answerOffer(offer.conversation, false));
            yes.disabled = no.disabled = Boolean(offer.answering);
            row.append(yes, no);
            box.append(row);
            offersBox.append(box);
        }
    }
    function answerOffer(id, accept) {
        const offer = offers.get(id);
        if (!offer || !link || !link.send({
            action: "transfer_answer",
            conversation: id,
            accept,
            ref: "offer:" + id
        })) {
            say(OFFLINE);
            return;
        }
        if (accept) {
            offer.answering = true;
            acceptWanted = id;
        } else {
            offers.delete(id);
        }
        renderOffers();
    }
    transferOpen.addEventListener("click", async () => {
        transferError.textContent = "";
        transferBox.hidden = false;
        transferSend.disabled = true;
        transferTo.replaceChildren(el("option", {
            value: ""
        }, "Loading the team\u2026"));
        const answer = await api("GET", "/sites/" + encodeURIComponent(site) + "/agents");
        if (!answer.ok) {
            transferTo.replaceChildren();
            transferError.textContent = answer.message;
            return;
        }
        const team = (Array.isArray(answer.body) ? answer.body : answer.body && answer.body.agents || []).filter(a => a && a.id !== (me && me.id) && !a.disabled);
        const options = team.map(a => {
            const free = a.on_shift && a.online && Number(a.load) < Number(a.max_chats);
            const state = !a.on_shift ? "off shift" : !a.online ? "offline" : a.away ? "away" : Number(a.load) >= Number(a.max_chats) ? "full" : "available";
            return el("option", {
                value: a.id,
                disabled: !free,
                "data-agent": a.id
            }, a.name + " \u2014 " + state + " (" + a.load + "/" + a.max_chats + " chats)");
        });
        options.sort((x, y) => Number(x.disabled) - Number(y.disabled));
        transferTo.replaceChildren(...options);
        const first = options.find(o => !o.disabled);
        if (first) transferTo.value = first.value; else transferError.textContent = "Nobody else is on shift with room for a chat.";
        transferSend.disabled = !first;
        transferNote.focus();
    });
    $("transfer-cancel").addEventListener("click", () => {
        transferBox.hidden = true;
        replyInput.focus();
    });
    const transferFrame = () => ({
        action: "transfer",
        conversation: selected || "",
        to: transferTo.value,
        ref: "transfer:" + (selected || "")
    });
    const transferCheck = lengthCheck(transferNote, $("transfer-length"), transferError, "Note", transferFrame, "note");
    transferBox.addEventListener("submit", event => {
        event.preventDefault();
        const c = selected ? convs.get(selected) : null;
        if (!c || !transferTo.value) return;
        const frame = transferFrame();
        if (transferNote.value.trim()) frame.note = transferNote.value;
        transferError.textContent = "";
        if (transferCheck(true) < 0) return;
        if (!link || !link.send(frame)) {
            transferError.textContent = OFFLINE;
            return;
        }
        transferSend.disabled = true;
    });
    on("transfer_offer", frame => {
        if (typeof frame.conversation !== "string") return;
        offers.set(frame.conversation, frame);
        renderOffers();
        chime("chat");
        notify("Transfer from " + (frame.from && frame.from.name || "a colleague"), frame.note && frame.note.text || frame.summary && frame.summary.preview || "", frame.conversation);
    });
    on("transfer_pending", (frame, c) => {
        if (!c) return;
        c.transfer = {
            to: frame.to && frame.to.id,
            name: frame.to && frame.to.name || "your colleague"
        };
        transferBox.hidden = true;
        transferNote.value = "";
        renderSelected();
    });
    on("transferred", (frame, c) => {
        if (!c) return;
        c.summary.status = "gone";
        c.goneText = "transferred to " + (frame.to && frame.to.name || "a colleague");
        ended(c, null);
        toast("The chat with " + label(c) + " is now with " + (frame.to && frame.to.name || "your colleague") + ".");
        renderConversations();
        renderSelected();
    });
    on("transfer_declined", (frame, c) => {
        if (!c) return;
        const who = c.transfer ? c.transfer.name : frame.by;
        c.transfer = null;
        toast(who + " declined the chat with " + label(c) + "; it stays with you.", true);
        renderSelected();
    });
    onRefusal("offer", (message, id) => {
        offers.delete(id);
        acceptWanted = null;
        renderOffers();
        toast(message, true);
        return true;
    });
    onRefusal("transfer", message => {
        transferError.textContent = message;
        transferSend.disabled = false;
        return true;
    });
    function statusText(c) {
        const s = c.summary.status;
        if (s === "closed") {
            const why = {
                abandoned: "closed: visitor left",
                moved_to_email: "closed: moved to email"
            }[c.summary.reason];
            if (why) return why;
            return c.endedBy === "visitor" ? "ended by the visitor" : c.endedBy === "agent" ? "ended" : "closed";
        }
        if (s === "gone") return c.goneText || "no longer assigned to you";
        if (s === "assigned") return "new";
        if (s === "queued") return "waiting";
        return "active";
    }
    function unread(c) {
        return c.transcript.countFrom("visitor", c.lastRead);
    }
    function order() {
        const all = [ ...convs.values() ];
        return all.filter(isOpen).concat(all.filter(c => !isOpen(c)));
    }
    function renderConversations() {
        convList.replaceChildren();
        if (!convs.size) convList.append(el("li", {
            class: "empty"
        }, "No chats yet."));
        let total = 0;
        order().forEach((c, index) => {
            const count = isOpen(c) ? unread(c) : 0;
            total += count || (isOpen(c) && !c.seen ? 1 : 0);
            const button = el("button", {
                type: "button",
                class: isOpen(c) ? "conv-item" : "conv-item closed",
                "data-conversation": c.id,
                "data-testid": "conversation",
                "aria-current": c.id === selected ? "true" : "false",
                title: index < 9 ? "Alt+" + (index + 1) : null
            });
            const what = el("span", {
                class: "what"
            });
            what.append(el("span", {
                class: "who"
            }, label(c)), el("span", {
                class: "state"
            }, " \xb7 " + statusText(c)));
            if (isOpen(c) && c.summary.presence && !byMail(c)) what.append(presenceNode(c.summary.presence));
            what.append(el("span", {
                class: "preview"
            }, c.last || c.summary.preview || "No message yet"));
            const badge = el("span", {
                class: "unread",
                "data-testid": "unread",
                "data-count": count,
                "aria-label": count + " unread"
            }, String(count));
            button.append(el("span", {
                class: "key",
                "aria-hidden": "true"
            }, index < 9 ? String(index + 1) : ""), what, badge);
            button.addEventListener("click", () => select(c.id));
            const row = el("li");
            row.append(button);
            convList.append(row);
        });
        chatsCount.textContent = total ? String(total) : "";
        document.title = total ? "(" + total + ") " + TITLE : TITLE;
    }
    function select(id) {
        const before = selected ? convs.get(selected) : null;
        if (selected !== id) {
            if (typing) typing.stop();
            indicator.hide();
            say("");
            hideSnippets();
            transferBox.hidden = true;
            if (before) {
                before.draft = replyInput.value;
                before.scroll = atBottom() ? null : messages.scrollTop;
            }
        }
        const c = convs.get(id);
        const changed = selected !== id;
        selected = id;
        if (c) c.seen = true;
        renderSelected();
        if (changed && c) {
            replyInput.value = c.draft || "";
            replyCheck();
            if (c.scroll === null || c.scroll === undefined) scrollDown(); else messages.scrollTop = c.scroll;
            if (!c.context || !c.notesLoaded) loadDetails(c);
        }
        markRead(c);
        renderConversations();
        if (!replyInput.disabled && view === "chats") replyInput.focus();
    }
    function markRead(c) {
        if (!c || c.id !== selected || view !== "chats" || !isOpen(c) || document.visibilityState !== "visible" || !link) return;
        const top = c.transcript.maxSeq;
        const behind = top > c.lastRead && unread(c) > 0;
        if ((behind || c.summary.status === "assigned") && link.send({
            action: "read",
            conversation: c.id,
            seq: top
        })) {
            c.lastRead = Math.max(c.lastRead, top);
            if (c.summary.status === "assigned") c.summary.status = "active";
            renderConversations();
            renderSelected();
        }
    }
    function upsert(summary) {
        if (!summary || typeof summary.id !== "string") return null;
        let c = convs.get(summary.id);
        if (!c) {
            const list = el("ol", {
                "data-conversation": summary.id
            });
            c = {
                id: summary.id,
                summary: {},
                lastRead: 0,
                endedBy: null,
                context: null,
                notes: [],
                notesLoaded: false,
                transfer: null,
                draft: "",
                scroll: null,
                seen: false,
                last: "",
                transcript: new Transcript(summary.id, list, renderMessage)
            };
            convs.set(summary.id, c);
            if (link) for (const entry of link.queued(summary.id)) c.transcript.addPending(entry, pendingNode(entry));
        }
        c.summary = Object.assign({}, c.summary, summary);
        c.lastRead = Math.max(c.lastRead, Number(summary.reads && summary.reads.agent) || 0);
        return c;
    }
    function ended(c, by) {
        c.endedBy = by || c.endedBy;
        c.transfer = null;
        if (link) for (const entry of link.drop(c.id)) failedNode(c, entry, "not sent: the chat has ended");
        if (c.id === selected) {
            indicator.hide();
            if (typing) typing.stop();
        }
    }
    function failedNode(c, entry, why) {
        const node = c.transcript.removePending(entry);
        if (!node) return;
        node.classList.add("failed");
        node.setAttribute("data-who", "You \xb7 " + why);
        c.transcript.list.append(node);
    }
    document.addEventListener("keydown", event => {
        if (!event.altKey || event.ctrlKey || event.metaKey || !me || app.hidden) return;
        const list = order();
        if (!list.length) return;
        const at = list.findIndex(c => c.id === selected);
        let target = null;
        if (event.code === "ArrowDown" || event.code === "ArrowUp") {
            const step = event.code === "ArrowDown" ? 1 : -1;
            target = list[at < 0 ? 0 : (at + step + list.length) % list.length];
        } else if (/^Digit[1-9]$/.test(event.code) && !event.shiftKey) {
            target = list[Number(event.code.slice(5)) - 1];
        } else if (event.code === "PageDown") {
            const rotated = list.slice(at + 1).concat(list.slice(0, at + 1));
            target = rotated.find(c => isOpen(c) && unread(c) > 0);
        }
        if (!target) return;
        event.preventDefault();
        if (view !== "chats") showView("chats");
        select(target.id);
    });
    document.addEventListener("visibilitychange", () => {
        if (selected) markRead(convs.get(selected));
        refreshQueue();
    });
    window.addEventListener("focus", refreshQueue);
    onView("chats", {
        show() {
            const c = selected ? convs.get(selected) : null;
            if (c) markRead(c);
        }
    });
    on("assigned", frame => {
        const known = convs.get(frame.summary && frame.summary.id);
        const wasOpen = isOpen(known);
        const mine = upsert(frame.summary);
        if (!mine) return;
        mine.endedBy = null;
        mine.goneText = "";
        mine.transcript.sync(link, true);
        const offered = offers.get(mine.id);
        offers.delete(mine.id);
        queue = queue.filter(i => i.conversation !== mine.id);
        if (!wasOpen) {
            announceNew(mine, offered ? "Chat transferred to you" : "New chat");
            loadDetails(mine);
        }
        renderQueue();
        renderOffers();
        if (acceptWanted === mine.id) {
            acceptWanted = null;
            showView("chats");
            select(mine.id);
        } else if (!selected || !isOpen(convs.get(selected))) {
            select(mine.id);
        } else {
            renderConversations();
        }
    });
    on("presence", (frame, c) => {
        const p = {
            state: frame.state,
            since: frame.since
        };
        if (c) {
            c.summary.presence = p;
            renderConversations();
            if (c.id === selected) renderSelected();
        }
        const item = queue.find(i => i.conversation === frame.conversation);
        if (item) {
            item.presence = p;
            renderQueue();
        }
    });
    on("closed", (frame, c) => {
        const summary = frame.summary;
        offers.delete(frame.conversation);
        renderOffers();
        if (c) {
            c.summary = Object.assign({}, c.summary, typeof summary === "object" ? summary : {}, {
                status: "closed"
            });
            ended(c, frame.by);
            renderConversations();
            renderSelected();
        }
    });
    on("by_email", (frame, c) => {
        if (!c) return;
        c.summary = Object.assign({}, c.summary, frame.summary || {});
        if (c.id === selected) renderSelected();
        toast(label(c) + " asked to continue by email: your replies are emailed to " + String(frame.email || "them") + ".");
    });
    function renderMessage(message) {
        const role = message.from && [ "agent", "system" ].includes(message.from.role) ? message.from.role : "visitor";
        if (role === "system") {
            return el("li", {
                class: "msg system",
                "data-role": "system",
                title: formatTime(message.ts)
            }, message.text);
        }
        const name = message.from && message.from.name;
        const mine = role === "agent" && (!me || !name || name === me.name);
        const who = mine ? "You" : role === "agent" ? name : "Visitor";
        return el("li", {
            class: mine ? "msg mine" : "msg",
            "data-role": role,
            "data-who": who + " \xb7 " + formatTime(message.ts)
        }, message.text);
    }
    function pendingNode(entry) {
        return el("li", {
            class: "msg mine",
            "data-role": "agent",
            "data-who": "You \xb7 sending\u2026"
        }, entry.text);
    }
    function renderSelected() {
        const c = selected ? convs.get(selected) : null;
        const ready = Boolean(link && link.ready);
        if (!c) {
            messages.replaceChildren();
            convTitle.textContent = "Select a chat";
            convClose.hidden = transferOpen.hidden = transcriptLabel.hidden = transcriptSend.hidden = true;
            ratingBox.hidden = true;
            transferBox.hidden = transferState.hidden = true;
            replyInput.disabled = replySend.disabled = true;
            indicator.hide();
            renderContext();
            return;
        }
        if (messages.firstElementChild !== c.transcript.list) messages.replaceChildren(c.transcript.list);
        convTitle.textContent = label(c) + " \xb7 " + statusText(c);
        if (isOpen(c) && c.summary.presence && !byMail(c)) convTitle.append(presenceNode(c.summary.presence));
        if (byMail(c)) {
            convTitle.append(el("span", {
                class: "badge",
                "data-testid": "by-email"
            }, " \xb7 by email"));
        }
        convClose.hidden = false;
        convClose.textContent = isOpen(c) ? "End chat" : "Remove from list";
        transferOpen.hidden = !isOpen(c) || c.summary.status === "queued";
        transferOpen.disabled = !ready || Boolean(c.transfer);
        transcriptLabel.hidden = !isOpen(c);
        const email = c.summary.email || c.context && c.context.email;
        transcriptBox.disabled = !email;
        if (!email) transcriptBox.checked = false;
        transcriptText.textContent = email ? "Email the transcript to " + email : "Email the transcript (no email given)";
        transcriptSend.hidden = !email || isOpen(c);
        transcriptSend.title = email ? "Email the whole chat to " + email : "";
        const rating = c.summary.rating;
        ratingBox.hidden = !rating;
        ratingBox.textContent = rating ? "Visitor rating: " + (rating.score === "up" ? "good" : "poor") + (rating.comment ? " \u2014 \u201c" + rating.comment + "\u201d" : "") : "";
        if (!isOpen(c)) transferBox.hidden = true;
        transferState.hidden = !c.transfer;
        transferState.textContent = c.transfer ? "Waiting for " + c.transfer.name + " to accept the chat\u2026" : "";
        replyInput.disabled = replySend.disabled = !isOpen(c);
        if (!isOpen(c)) indicator.hide();
        renderContext();
    }
    function atBottom() {
        return messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
    }
    function scrollDown() {
        messages.scrollTop = messages.scrollHeight;
    }
    transcriptSend.addEventListener("click", () => {
        const c = selected ? convs.get(selected) : null;
        if (!c) return;
        const id = "c" + Math.random().toString(36).slice(2, 12);
        if (!link.send({
            action: "transcript",
            conversation: c.id,
            id,
            ref: "transcript:" + c.id
        })) {
            say(OFFLINE);
        }
    });
    convClose.addEventListener("click", () => {
        const c = selected ? convs.get(selected) : null;
        if (!c) return;
        if (isOpen(c)) {
            const frame = {
                action: "close",
                conversation: c.id,
                ref: "close:" + c.id
            };
            if (transcriptBox.checked && !transcriptBox.disabled) frame.transcript = true;
            if (!link.send(frame)) say(OFFLINE);
            transcriptBox.checked = false;
            return;
        }
        convs.delete(c.id);
        const next = order()[0];
        selected = null;
        if (next) select(next.id); else {
            renderConversations();
            renderSelected();
        }
    });
    on("message", (frame, c) => {
        if (!c || !c.transcript.add(frame)) return;
        const fromVisitor = frame.from && frame.from.role === "visitor";
        if (!isSystem(frame)) c.last = frame.text.slice(0, 140);
        if (fromVisitor && !c.summary.preview) c.summary.preview = frame.text.slice(0, 140);
        if (fromVisitor && c.id === selected) indicator.hide();
        c.transcript.watchGap(link);
        if (c.id === selected) {
            if (atBottom() || !fromVisitor) scrollDown();
            markRead(c);
        }
        if (fromVisitor && (c.id !== selected || view !== "chats" || document.visibilityState !== "visible")) {
            chime("message");
            notify(label(c), frame.text, c.id);
        }
        renderConversations();
    });
    on("messages", (frame, c) => {
        if (!c) return;
        const stick = atBottom();
        c.transcript.onMessages(frame, link);
        const items = Array.isArray(frame.items) ? frame.items : [];
        const said = items.filter(m => !isSystem(m));
        if (said.length) c.last = String(said[said.length - 1].text || "").slice(0, 140);
        if (frame.summary && c.summary.status !== "gone") {
            c.summary = Object.assign({}, c.summary, frame.summary);
            if (!isOpen(c)) ended(c, null);
        }
        if (c.id === selected) {
            if (stick) scrollDown();
            markRead(c);
        }
        renderConversations();
        renderSelected();
    });
    on("typing", (frame, c) => {
        if (c && c.id === selected && frame.role === "visitor") {
            if (frame.on) indicator.show("Visitor is typing\u2026"); else indicator.hide();
        }
    });
    on("rated", (frame, c) => {
        if (!c) return;
        c.summary = Object.assign({}, c.summary, {
            rating: frame.rating
        });
        if (c.id === selected) renderSelected();
        toast(label(c) + (frame.rating && frame.rating.score === "up" ? " rated the chat good" : " rated the chat poor"));
    });
    on("transcript_queued", frame => {
        toast("Transcript on its way to " + String(frame.email || "the visitor") + ".");
    });
    const replyCheck = lengthCheck(replyInput, $("reply-length"), notice, "Message");
    replyForm.addEventListener("submit", event => {
        event.preventDefault();
        const c = selected ? convs.get(selected) : null;
        const text = replyInput.value;
        if (!c || !isOpen(c) || !text.trim()) return;
        if (replyCheck(true) < 0) return;
        const entry = link.post(c.id, text);
        if (!entry) return;
        c.transcript.addPending(entry, pendingNode(entry));
        replyInput.value = "";
        replyCheck();
        c.draft = "";
        hideSnippets();
        typing.stop();
        scrollDown();
    });
    replyInput.addEventListener("keydown", event => {
        if (!snippetMenu.hidden && menuItems.length) {
            if (event.key === "ArrowDown" || event.key === "ArrowUp") {
                event.preventDefault();
                menuActive = (menuActive + (event.key === "ArrowDown" ? 1 : -1) + menuItems.length) % menuItems.length;
                renderSnippetMenu();
                return;
            }
            if (event.key === "Tab" && !event.shiftKey || event.key === "Enter" && !event.shiftKey && !event.isComposing) {
                event.preventDefault();
                insertSnippet(menuItems[menuActive]);
                return;
            }
            if (event.key === "Escape") {
                event.preventDefault();
                menuDismissed = replyInput.value;
                hideSnippets();
                return;
            }
        }
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
            event.preventDefault();
            replyForm.requestSubmit();
        }
    });
    replyInput.addEventListener("input", () => {
        if (selected && replyInput.value.trim()) typing.input(selected); else if (typing) typing.stop();
        updateSnippets();
    });
    replyInput.addEventListener("blur", () => setTimeout(() => {
        if (document.activeElement !== replyInput) hideSnippets();
    }, 150));
    let menuItems = [];
    let menuActive = 0;
    let menuAt = null;
    let menuDismissed = null;
    function snippetQuery() {
        const end = replyInput.selectionStart;
        if (end !== replyInput.selectionEnd) return null;
        const match = /(^|\s)\/([a-z0-9_-]*)$/i.exec(replyInput.value.slice(0, end));
        return match ? {
            start: end - match[2].length - 1,
            end,
            text: match[2].toLowerCase()
        } : null;
    }
    function updateSnippets() {
        const query = snippetQuery();
        if (!query || !snippets.length || replyInput.value === menuDismissed) {
            hideSnippets();
            return;
        }
        menuDismissed = null;
        const starts = snippets.filter(s => s.shortcut.startsWith(query.text));
        const contains = query.text ? snippets.filter(s => !s.shortcut.startsWith(query.text) && (s.shortcut.includes(query.text) || s.text.toLowerCase().includes(query.text))) : [];
        menuItems = starts.concat(contains).slice(0, 8);
        menuAt = query;
        menuActive = 0;
        if (!menuItems.length) {
            hideSnippets();
            return;
        }
        renderSnippetMenu();
    }
    function renderSnippetMenu() {
        snippetMenu.replaceChildren(...menuItems.map((s, i) => {
            const li = el("li", {
                role: "option",
                id: "snippet-" + i,
                "aria-selected": i === menuActive ? "true" : "false",
                "data-shortcut": s.shortcut,
                "data-testid": "snippet"
            });
            li.append(el("span", {
                class: "sc"
            }, "/" + s.shortcut), el("span", {
                class: "tx"
            }, s.text));
            li.addEventListener("mousedown", event => {
                event.preventDefault();
                insertSnippet(s);
            });
            return li;
        }));
        snippetMenu.hidden = false;
        replyInput.setAttribute("aria-activedescendant", "snippet-" + menuActive);
    }
    function hideSnippets() {
        snippetMenu.hidden = true;
        menuItems = [];
        replyInput.removeAttribute("aria-activedescendant");
    }
    function insertSnippet(snippet) {
        if (!snippet || !menuAt) return;
        const value = replyInput.value;
        replyInput.value = value.slice(0, menuAt.start) + snippet.text + value.slice(menuAt.end);
        const caret = menuAt.start + snippet.text.length;
        replyInput.setSelectionRange(caret, caret);
        hideSnippets();
        replyCheck();
        replyInput.focus();
        if (selected) typing.input(selected);
    }
    function onAck(entry, ack) {
        const c = convs.get(entry.conversation);
        if (!c) return;
        c.transcript.removePending(entry);
        c.transcript.add({
            type: "message",
            conversation: c.id,
            seq: ack.seq,
            id: entry.id,
            from: {
                role: "agent",
                name: me ? me.name : null
            },
            text: entry.text,
            ts: ack.ts
        });
        c.last = entry.text.slice(0, 140);
        c.transcript.watchGap(link);
        if (c.id === selected) scrollDown();
        renderConversations();
    }
    function onFailed(entry, error) {
        const c = convs.get(entry.conversation);
        if (!c) return;
        failedNode(c, entry, "not sent: " + (error.message || error.code));
        if (error.code === "closed") {
            c.summary.status = "closed";
            ended(c, null);
            renderConversations();
            renderSelected();
        }
    }
    on("snippets", frame => {
        snippets = paged(snippets, frame, "items", s => s.shortcut, cursor => link.send({
            action: "snippets",
            cursor
        }));
    });
    const BROWSERS = [ [ /Edg(?:e|A|iOS)?\/(\d+)/, "Edge" ], [ /OPR\/(\d+)/, "Opera" ], [ /SamsungBrowser\/(\d+)/, "Samsung Internet" ], [ /(?:Firefox|FxiOS)\/(\d+)/, "Firefox" ], [ /CriOS\/(\d+)/, "Chrome" ], [ /HeadlessChrome\/(\d+)/, "Chrome (headless)" ], [ /Chrome\/(\d+)/, "Chrome" ], [ /Version\/(\d+)[\d.]*.*Safari/, "Safari" ] ];
    const SYSTEMS = [ [ /Windows NT/, "Windows" ], [ /iPhone|iPad|iPod/, "iOS" ], [ /Android/, "Android" ], [ /CrOS/, "ChromeOS" ], [ /Mac OS X|Macintosh/, "macOS" ], [ /Linux/, "Linux" ] ];
    function describeBrowser(ua) {
        if (!ua) return "";
        let browser = "Unknown browser";
        for (const [re, name] of BROWSERS) {
            const m = re.exec(ua);
            if (m) {
                browser = name + " " + m[1];
                break;
            }
        }
        const system = (SYSTEMS.find(([re]) => re.test(ua)) || [ null, "an unknown system" ])[1];
        const device = /iPad|Tablet/.test(ua) || /Android/.test(ua) && !/Mobile/.test(ua) ? "tablet" : /Mobi|iPhone/.test(ua) ? "phone" : "desktop";
        return browser + " on " + system + ", " + device;
    }
    function localTime(zone) {
        if (!zone) return "unknown";
        try {
            return new Intl.DateTimeFormat([], {
                timeZone: zone,
                weekday: "short",
                hour: "2-digit",
                minute: "2-digit"
            }).format(new Date) + " (" + zone + ")";
        } catch (e) {
            return "unknown";
        }
    }
    function cameFrom(ctx) {
        const pages = Array.isArray(ctx.pages) ? ctx.pages : [];
        const outside = p => {
            try {
                return Boolean(p.referrer) && new URL(p.referrer).origin !== new URL(p.url).origin;
            } catch (e) {
                return false;
            }
        };
        const first = pages.find(outside);
        if (first) return first.referrer;
        return pages.length ? null : ctx.referrer || null;
    }
    function renderContext() {
        const c = selected ? convs.get(selected) : null;
        $("context-empty").hidden = Boolean(c);
        $("context-body").hidden = !c;
        if (!c) return;
        const ctx = c.context || {};
        const s = c.summary;
        $("ctx-name").textContent = ctx.name || s.visitor_name || "\u2014";
        $("ctx-email").textContent = ctx.email || s.email || "\u2014";
        $("ctx-visitor").textContent = ctx.visitor || s.visitor || "\u2014";
        $("ctx-time").textContent = localTime(ctx.timezone);
        const browser = $("ctx-browser");
        browser.textContent = describeBrowser(ctx.user_agent) || "\u2014";
        browser.title = ctx.user_agent || "";
        const from = cameFrom(ctx);
        $("ctx-referrer").replaceChildren(from ? webLink(from) : document.createTextNode("direct or unknown"));
        const page = ctx.page;
        $("ctx-page").replaceChildren(page ? webLink(page.url, page.title || page.url) : document.createTextNode("\u2014"));
        const pages = Array.isArray(ctx.pages) ? ctx.pages : [];
        $("ctx-pages-count").textContent = pages.length ? String(pages.length) : "";
        $("ctx-pages").replaceChildren(...pages.slice(-30).reverse().map(p => {
            const li = el("li");
            li.append(el("time", {}, formatTime(p.ts)), webLink(p.url, p.title || p.url));
            return li;
        }));
        const past = Array.isArray(ctx.past) ? ctx.past : [];
        $("ctx-past").replaceChildren(...past.length ? past.map(p => {
            const li = el("li", {
                "data-conversation": p.id
            });
            li.append(el("time", {}, dateTime(p.created_at)), el("span", {}, (p.preview || "No message") + (p.agent ? " \xb7 with " + p.agent : "")));
            return li;
        }) : [ el("li", {
            class: "muted"
        }, c.context ? "First chat." : "\u2026") ]);
        renderNotes(c);
    }
    function loadDetails(c) {
        if (!link || !isOpen(c)) return;
        link.send({
            action: "context",
            conversation: c.id,
            ref: "context:" + c.id
        });
        link.send({
            action: "notes",
            conversation: c.id,
            ref: "notes:" + c.id
        });
    }
    on("context", (frame, c) => {
        if (!c) return;
        const pages = paged(c.context && frame.after ? c.context.pages || [] : [], frame, "pages", null, cursor => link.send({
            action: "context",
            conversation: c.id,
            cursor
        }));
        c.context = frame.after ? Object.assign({}, c.context, {
            pages
        }) : Object.assign({}, frame, {
            pages
        });
        if (c.id === selected) renderSelected();
    });
    on("page", (frame, c) => {
        if (!c) return;
        const page = {
            url: frame.url,
            title: frame.title,
            referrer: frame.referrer,
            ts: frame.ts
        };
        c.context = c.context || {
            pages: []
        };
        c.context.page = page;
        c.context.pages = (Array.isArray(c.context.pages) ? c.context.pages : []).concat([ page ]);
        if (!c.context.referrer && frame.referrer) c.context.referrer = frame.referrer;
        if (c.id === selected) renderContext();
    });
    onRefusal("context", () => true);
    function renderNotes(c) {
        const list = $("notes");
        const notes = c.notes || [];
        list.replaceChildren(...notes.length ? notes.map(n => {
            const li = el("li", {
                "data-testid": "note"
            });
            li.append(el("span", {
                class: "by"
            }, (n.from && n.from.name || "Agent") + " \xb7 " + dateTime(n.ts)), document.createTextNode(n.text));
            return li;
        }) : [ el("li", {
            class: "muted empty-note"
        }, "No notes yet. The visitor never sees them.") ]);
        const open = isOpen(c) && c.summary.status !== "gone";
        $("note-input").disabled = $("note-add").disabled = !open;
    }
    function addNote(c, note) {
        if (!note || typeof note.text !== "string") return;
        c.notes = c.notes || [];
        const key = n => n.ts + "|" + (n.from && n.from.id) + "|" + n.text;
        if (c.notes.some(n => key(n) === key(note))) return;
        c.notes.push(note);
        c.notes.sort((a, b) => Number(a.ts) - Number(b.ts));
    }
    const noteFrame = () => ({
        action: "note",
        conversation: selected || "",
        ref: "note:" + (selected || "")
    });
    const noteCheck = lengthCheck($("note-input"), $("note-length"), $("note-error"), "Note", noteFrame);
    $("note-form").addEventListener("submit", event => {
        event.preventDefault();
        const c = selected ? convs.get(selected) : null;
        const input = $("note-input");
        const text = input.value;
        if (!c || !text.trim() || noteCheck(true) < 0) return;
        if (!link || !link.send(Object.assign(noteFrame(), {
            text
        }))) {
            say(OFFLINE);
            return;
        }
        input.value = "";
        noteCheck();
    });
    on("notes", (frame, c) => {
        if (!c) return;
        if (!frame.after) c.notes = [];
        paged([], frame, "items", null, cursor => link.send({
            action: "notes",
            conversation: c.id,
            cursor
        }));
        for (const note of Array.isArray(frame.items) ? frame.items : []) addNote(c, note);
        c.notesLoaded = true;
        if (c.id === selected) renderNotes(c);
    });
    on("note", (frame, c) => {
        if (!c) return;
        addNote(c, frame);
        if (c.id === selected) renderNotes(c);
    });
    onRefusal("notes", () => true);
    const visitorsBody = $("visitors-list");
    const inviteText = $("invite-text");
    let visitorItems = [];
    let visitorsAt = 0;
    const invitations = new Map;
    const inviting = new Set;
    const invited = new Set;
    let visitorsTimer = null;
    function pollVisitors() {
        if (link) link.send({
            action: "visitors",
            ref: "visitors"
        });
    }
    function renderVisitors() {
        $("visitors-count").textContent = visitorItems.length ? String(visitorItems.length) : "";
        if (!visitorItems.length) {
            const cell = el("td", {
                colspan: 6,
                class: "muted"
            }, "Nobody is browsing the site right now.");
            const row = el("tr");
            row.append(cell);
            visitorsBody.replaceChildren(row);
            return;
        }
        const now = Date.now();
        visitorsBody.replaceChildren(...visitorItems.map(v => {
            const row = el("tr", {
                "data-visitor": v.visitor,
                "data-testid": "visitor-row"
            });
            const who = el("td");
            who.append(document.createTextNode("Visitor " + String(v.visitor).slice(0, 6)));
            if (v.chatting) who.append(el("span", {
                class: "tag on"
            }, "chatting"));
            if (v.invited || invited.has(v.visitor)) who.append(el("span", {
                class: "tag warn"
            }, "invited"));
            const page = el("td");
            if (v.page) page.append(webLink(v.page.url, v.page.title || v.page.url)); else page.textContent = "\u2014";
            const onPage = el("td", {
                class: "num"
            });
            if (v.page && v.on_page_ms !== null && v.on_page_ms !== undefined) {
                const since = visitorsAt - Number(v.on_page_ms);
                onPage.append(el("span", {
                    "data-since": since
                }, duration(now - since)));
            }
            const pages = Array.isArray(v.pages) ? v.pages : [];
            const pagesCell = el("td", {
                class: "num",
                title: pages.map(p => p.title || p.url).join("\n")
            }, String(v.page_count || pages.length));
            const onSite = el("td", {
                class: "num"
            });
            if (v.since) onSite.append(el("span", {
                "data-since": Number(v.since)
            }, duration(now - Number(v.since))));
            const action = el("td");
            const busy = v.chatting || v.invited || invited.has(v.visitor) || inviting.has(v.visitor);
            const button = el("button", {
                type: "button",
                "data-testid": "invite",
                "data-visitor": v.visitor
            }, v.chatting ? "Chatting" : busy ? "Invited" : "Invite");
            button.disabled = busy;
            button.addEventListener("click", () => invite(v.visitor));
            action.append(button);
            row.append(who, page, onPage, pagesCell, onSite, action);
            return row;
        }));
    }
    function invite(visitor) {
        const text = inviteText.value.trim() || "Can I help you?";
        if (!link || !link.send({
            action: "invite",
            visitor,
            text: text.slice(0, 300),
            ref: "invite:" + visitor
        })) {
            toast(OFFLINE, true);
            return;
        }
        inviting.add(visitor);
        renderVisitors();
    }
    onView("visitors", {
        show() {
            pollVisitors();
            clearInterval(visitorsTimer);
            visitorsTimer = setInterval(() => {
                if (document.visibilityState === "visible") pollVisitors();
            }, 1e4);
        },
        hide() {
            clearInterval(visitorsTimer);
            visitorsTimer = null;
        }
    });
    on("visitors", frame => {
        visitorsAt = Date.now();
        visitorItems = paged(visitorItems, frame, "items", v => v.visitor, cursor => link.send({
            action: "visitors",
            cursor
        }));
        renderVisitors();
    });
    on("invited", frame => {
        if (typeof frame.visitor !== "string") return;
        invitations.set(frame.id, frame.visitor);
        inviting.delete(frame.visitor);
        invited.add(frame.visitor);
        toast("Invitation sent to visitor " + frame.visitor.slice(0, 6) + ".");
        renderVisitors();
    });
    on("invitation_answer", frame => {
        const who = "Visitor " + String(frame.visitor || "").slice(0, 6);
        invited.delete(frame.visitor);
        toast(frame.accepted ? who + " accepted your invitation: the chat is in your list." : who + " declined your invitation.", !frame.accepted);
        if (view === "visitors") pollVisitors();
    });
    onRefusal("invite", (message, id) => {
        inviting.delete(id);
        renderVisitors();
        toast(message, true);
        return true;
    });
    function visitorLabel(s) {
        return s.visitor_name || s.email || "Visitor " + String(s.visitor || "").slice(0, 6);
    }
    function cells(row, values) {
        for (const value of values) {
            const td = el("td");
            if (value instanceof Node) td.append(value); else td.textContent = value === null || value === undefined ? "" : String(value);
            row.append(td);
        }
        return row;
    }
    function emptyRow(columns, text) {
        const row = el("tr");
        row.append(el("td", {
            colspan: columns,
            class: "muted"
        }, text));
        return row;
    }
    function since(ts) {
        const n = Number(ts);
        return n > 0 ? el("span", {
            "data-since": n
        }, duration(Date.now() - n)) : "";
    }
    onRefusal("admin", (message, id, frame) => {
        toast(frame.message || "Something went wrong.", true);
        return true;
    });
    {
        on("status", frame => {
            const banner = $("site-closed");
            const closed = frame.agents === true && frame.in_hours === false;
            banner.hidden = !closed;
            if (!closed) {
                banner.textContent = "";
                return;
            }
            const why = typeof frame.closure === "string" ? frame.closure ? "closed today: " + frame.closure : "closed today" : "outside business hours";
            const back = Number(frame.next_open) > 0 ? " Open again " + dateTime(Number(frame.next_open)) + "." : "";
            banner.textContent = "Your site shows visitors \u201cWe're away\u201d (" + why + ") although agents are on shift: " + "no new chats come in." + back + (isAdmin() ? " Business hours are in Settings." : "");
        });
    }
    {
        let overviewTimer = null;
        function pollOverview() {
            send({
                action: "overview",
                ref: "admin:overview"
            });
        }
        onView("team", {
            show() {
                pollOverview();
                if (isAdmin()) loadLocks();
                clearInterval(overviewTimer);
                overviewTimer = setInterval(() => {
                    if (document.visibilityState === "visible") pollOverview();
                }, 5e3);
            },
            hide() {
                clearInterval(overviewTimer);
                overviewTimer = null;
            }
        });
        const ov = {
            agents: [],
            conversations: [],
            queue: []
        };
        on("overview", frame => {
            for (const name of Object.keys(ov)) {
                if (Array.isArray(frame[name])) ov[name] = frame.after ? ov[name].concat(frame[name]) : frame[name].slice(); else if (!frame.after) ov[name] = [];
            }
            for (const cursor of Object.values(frame.next || {})) {
                if (typeof cursor === "string") send({
                    action: "overview",
                    cursor,
                    ref: "admin:overview"
                });
            }
            const agents = ov.agents;
            const chats = ov.conversations;
            const queue = ov.queue;
            $("ov-queue").textContent = String(Number(frame.queue_length) || queue.length);
            $("ov-chats").textContent = String(chats.length);
            $("ov-agents").textContent = String(agents.length);
            $("ov-agent-list").replaceChildren(...agents.length ? agents.map(a => {
                const load = el("span");
                const meter = el("meter", {
                    min: 0,
                    max: Number(a.max_chats) || 1,
                    value: Number(a.load) || 0
                });
                load.append(meter, document.createTextNode(" " + a.load + " / " + a.max_chats));
                return cells(el("tr", {
                    "data-agent": a.id
                }), [ a.name + " (" + a.id + ")", load, a.online ? "connected" : "disconnected", (a.conversations || []).length ]);
            }) : [ emptyRow(4, "Nobody is on shift.") ]);
            $("ov-chat-list").replaceChildren(...chats.length ? chats.map(s => cells(el("tr", {
                "data-conversation": s.id
            }), [ visitorLabel(s), s.agent || "\u2014", s.status, since(s.assigned_at || s.created_at), s.preview || "" ])) : [ emptyRow(5, "No chats right now.") ]);
            $("ov-queue-list").replaceChildren(...queue.length ? queue.map(item => {
                const li = el("li", {
                    "data-conversation": item.conversation
                });
                li.append(document.createTextNode("#" + item.position + " \xb7 waiting "), since(item.queued_at), document.createTextNode(" \xb7 " + (item.preview || "No message yet")));
                return li;
            }) : [ el("li", {
                class: "muted"
            }, "Nobody is waiting.") ]);
        });
        const LOCK_SCOPES = {
            "account+source": "this account, from one source",
            source: "every account, from one source",
            account: "this account, from anywhere"
        };
        async function loadLocks() {
            const list = $("lock-list");
            const answer = await api("GET", "/sites/" + encodeURIComponent(site) + "/locks");
            if (!answer.ok) {
                list.replaceChildren(emptyRow(4, answer.message));
                return;
            }
            const locks = answer.body && Array.isArray(answer.body.locks) ? answer.body.locks : [];
            list.replaceChildren(...locks.length ? locks.map(e => {
                const source = e.source ? el("code", {
                    title: String(e.source)
                }, String(e.source).slice(0, 12) + "\u2026") : "\u2014";
                return cells(el("tr", {
                    "data-testid": "lock-row",
                    "data-agent": String(e.agent || "")
                }), [ dateTime(e.at), e.agent, LOCK_SCOPES[e.scope] || e.scope, source ]);
            }) : [ emptyRow(4, "No sign-in locks lately.") ]);
        }
    }
    {
        const historyText = $("history-text");
        const historyState = $("history-state");
        $("history-form").addEventListener("submit", event => {
            event.preventDefault();
            const text = historyText.value.trim();
            if (!text) return;
            if (!send({
                action: "history",
                text: text.slice(0, 100),
                ref: "admin:history"
            })) {
                historyState.textContent = "You're offline; try again when the connection is back.";
                return;
            }
            historyState.textContent = "Searching\u2026";
        });
        on("history", frame => {
            const items = Array.isArray(frame.items) ? frame.items : [];
            const query = String(frame.query || historyText.value);
            historyState.textContent = items.length ? items.length + (items.length === 1 ? " chat" : " chats") + " found." : "No closed chats match \u201c" + query + "\u201d.";
            $("history-list").replaceChildren(...items.map(s => {
                const who = el("span");
                who.append(document.createTextNode(s.visitor_name || "Visitor " + String(s.visitor || "").slice(0, 6)));
                if (s.email) who.append(el("span", {
                    class: "muted"
                }, " \xb7 " + s.email));
                const rating = s.rating ? (s.rating.score === "up" ? "good" : "poor") + (s.rating.comment ? ": " + s.rating.comment : "") : "";
                return cells(el("tr", {
                    "data-conversation": s.id,
                    "data-testid": "history-row"
                }), [ dateTime(s.created_at), who, s.agent || "\u2014", s.preview || "", rating ]);
            }));
        });
    }
    {
        let siteDoc = null;
        let team = [];
        const sitePath = () => "/sites/" + encodeURIComponent(site);
        function setStatus(name, text, bad) {
            const node = document.querySelector('.status[data-for="' + name + '"]');
            if (!node) return;
            node.textContent = text || "";
            node.className = "status" + (bad ? " bad" : text ? " ok" : "");
            node.setAttribute("role", bad ? "alert" : "status");
        }
        onView("settings", {
            show() {
                load();
            }
        });
        async function load() {
            if (!site) return;
            $("settings-site").textContent = "\xb7 site " + site;
            const [settings, agents] = await Promise.all([ api("GET", sitePath()), api("GET", sitePath() + "/agents") ]);
            if (settings.ok) {
                siteDoc = settings.body;
                renderSite();
                renderHours();
                renderSnippets();
                renderWidget();
                renderRules();
                renderHolding();
                renderOrigins();
            } else {
                for (const name of [ "site", "hours", "snippets", "widget", "rules", "holding", "origins" ]) {
                    setStatus(name, settings.message, true);
                }
            }
            if (agents.ok) {
                team = Array.isArray(agents.body) ? agents.body : agents.body && agents.body.agents || [];
                renderAgents();
            } else {
                setStatus("agents", agents.message, true);
            }
        }
        async function save(name, doc) {
            setStatus(name, "Saving\u2026");
            const answer = await api("PUT", sitePath(), doc);
            if (!answer.ok) {
                setStatus(name, answer.message, true);
                return false;
            }
            siteDoc = answer.body;
            setStatus(name, "Saved.");
            return true;
        }
        const consoleWith = part => Object.assign({}, siteDoc.console, part);
        function addRow(container, fields, values) {
            const row = el("div", {
                class: "row"
            });
            for (const f of fields) {
                let input;
                if (f.type === "textarea") input = el("textarea", {
                    name: f.name,
                    rows: 2,
                    maxlength: f.max,
                    placeholder: f.label
                }); else if (f.type === "select") {
                    input = el("select", {
                        name: f.name
                    });
                    for (const [value, text] of f.options) input.append(el("option", {
                        value
                    }, text));
                } else {
                    input = el("input", {
                        name: f.name,
                        type: f.type || "text",
                        maxlength: f.max,
                        min: f.min,
                        max: f.maxValue,
                        placeholder: f.label,
                        class: f.wide ? "wide" : null
                    });
                }
                input.setAttribute("aria-label", f.label);
                const value = values ? values[f.name] : undefined;
                if (value !== undefined && value !== null) input.value = String(value);
                row.append(input);
            }
            const remove = el("button", {
                type: "button",
                class: "ghost",
                "aria-label": "Remove"
            }, "Remove");
            remove.addEventListener("click", () => row.remove());
            row.append(remove);
            container.append(row);
            return row;
        }
        function readRows(container, keys) {
            return [ ...container.querySelectorAll(".row") ].map(row => {
                const out = {};
                for (const input of row.querySelectorAll("input, textarea, select")) out[input.name] = input.value;
                return out;
            }).filter(values => keys.some(k => String(values[k] || "").trim()));
        }
        const siteForm = $("site-form");
        const PRECHAT_DEFAULTS = {
            name: "optional",
            email: "required"
        };
        function clearFieldErrors() {
            for (const node of siteForm.querySelectorAll(".field-error")) node.textContent = "";
            for (const node of siteForm.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
        }
        function showFieldError(message) {
            const path = String(message).split(":")[0].trim();
            for (const node of siteForm.querySelectorAll(".field-error")) {
                const paths = node.getAttribute("data-error").split(" ");
                if (!paths.some(p => path === p || path.startsWith(p + "."))) continue;
                node.textContent = message;
                const box = node.closest(".field");
                const input = box && box.querySelector("input, select, textarea");
                if (input) {
                    input.setAttribute("aria-invalid", "true");
                    input.focus();
                }
                return true;
            }
            return false;
        }
        function renderSite() {
            const widget = siteDoc.widget || {};
            const f = siteForm.elements;
            f.name.value = siteDoc.name || "";
            f.name.placeholder = siteDoc.display_name || "Support";
            f.team_email.value = siteDoc.team_email || "";
            f.notify_team.checked = !siteDoc.console || siteDoc.console.notify_team !== false;
            f.greeting.value = widget.greeting || "";
            f.color.value = /^#[0-9a-fA-F]{6}$/.test(widget.color || "") ? widget.color : "#1f6f5c";
            for (const radio of siteForm.querySelectorAll('input[name="position"]')) {
                radio.checked = radio.value === (widget.position === "left" ? "left" : "right");
            }
            const fields = Object.assign({}, PRECHAT_DEFAULTS, widget.prechat_fields || {});
            f.prechat_name.value = widget.prechat === true ? fields.name : "off";
            f.prechat_email.value = widget.prechat === true ? fields.email : "off";
            f.offline_message.value = widget.offline_message || "";
            const abandon = siteDoc.console && siteDoc.console.abandon;
            $("site-abandon").hidden = !abandon;
            if (abandon) {
                f.queued_after_seconds.value = String(abandon.queued_after_seconds || 180);
                f.assigned_after_seconds.value = String(abandon.assigned_after_seconds || 900);
            }
            clearFieldErrors();
        }
        siteForm.addEventListener("submit", async event => {
            event.preventDefault();
            if (!siteDoc) return;
            const f = siteForm.elements;
            clearFieldErrors();
            const position = siteForm.querySelector('input[name="position"]:checked');
            const asked = {
                name: f.prechat_name.value,
                email: f.prechat_email.value
            };
            const prechat = asked.name !== "off" || asked.email !== "off";
            const widget = Object.assign({}, siteDoc.widget, {
                greeting: f.greeting.value.trim(),
                color: f.color.value,
                position: position ? position.value : "right",
                offline_message: f.offline_message.value.trim(),
                prechat
            });
            if ("prechat_fields" in siteDoc.widget || prechat) widget.prechat_fields = asked;
            const doc = {
                name: f.name.value.trim(),
                team_email: f.team_email.value.trim(),
                widget
            };
            const part = {
                notify_team: f.notify_team.checked
            };
            if (siteDoc.console && siteDoc.console.abandon) {
                part.abandon = Object.assign({}, siteDoc.console.abandon, {
                    queued_after_seconds: Number(f.queued_after_seconds.value),
                    assigned_after_seconds: Number(f.assigned_after_seconds.value)
                });
            }
            doc.console = consoleWith(part);
            setStatus("site", "Saving\u2026");
            const answer = await api("PUT", sitePath(), doc);
            if (!answer.ok) {
                const placed = showFieldError(answer.message);
                setStatus("site", placed ? "Not saved: see the field marked in red." : answer.message, true);
                return;
            }
            siteDoc = answer.body;
            renderSite();
            setStatus("site", "Saved. Visitors see it now.");
        });
        function renderAgents() {
            $("agents-list").replaceChildren(...team.map(a => {
                const row = el("tr", {
                    "data-agent": a.id
                });
                const name = el("input", {
                    value: a.name,
                    maxlength: 100,
                    "aria-label": "Name of " + a.id
                });
                name.value = a.name;
                const role = el("select", {
                    "aria-label": "Role of " + a.id
                });
                for (const r of [ "agent", "supervisor", "admin" ]) role.append(el("option", {
                    value: r
                }, r));
                role.value = a.role;
                const max = el("input", {
                    type: "number",
                    min: 1,
                    max: 50,
                    "aria-label": "Maximum chats of " + a.id,
                    "data-testid": "agent-max"
                });
                max.value = String(a.max_chats);
                const now = el("span");
                if (a.disabled) now.append(el("span", {
                    class: "tag warn"
                }, "deactivated")); else {
                    now.append(document.createTextNode(a.load + " chats"));
                    if (a.on_shift) now.append(el("span", {
                        class: "tag on"
                    }, a.away ? "away" : "on shift"));
                    if (a.online) now.append(el("span", {
                        class: "tag"
                    }, "online"));
                }
                const actions = el("span");
                const saveButton = el("button", {
                    type: "button",
                    "data-testid": "agent-save"
                }, "Save");
                saveButton.addEventListener("click", async () => {
                    const doc = {};
                    if (name.value.trim() !== a.name) doc.name = name.value.trim();
                    if (role.value !== a.role) doc.role = role.value;
                    if (Number(max.value) !== Number(a.max_chats)) doc.max_chats = Number(max.value);
                    if (!Object.keys(doc).length) {
                        setStatus("agents", "Nothing changed for " + a.id + ".");
                        return;
                    }
                    const answer = await api("PATCH", sitePath() + "/agents/" + encodeURIComponent(a.id), doc);
                    if (!answer.ok) {
                        setStatus("agents", answer.message, true);
                        return;
                    }
                    setStatus("agents", "Saved " + a.id + ".");
                    reloadTeam();
                });
                actions.append(saveButton);
                if (!a.disabled && !(me && me.id === a.id)) {
                    const off = el("button", {
                        type: "button",
                        class: "danger",
                        "data-testid": "agent-deactivate"
                    }, "Deactivate");
                    off.addEventListener("click", async () => {
                        if (off.getAttribute("data-confirm") !== "yes") {
                            off.setAttribute("data-confirm", "yes");
                            off.textContent = "Click again to deactivate " + a.id;
                            return;
                        }
                        const answer = await api("DELETE", sitePath() + "/agents/" + encodeURIComponent(a.id));
                        if (!answer.ok) {
                            setStatus("agents", answer.message, true);
                            return;
                        }
                        setStatus("agents", a.id + " is deactivated and signed out.");
                        reloadTeam();
                    });
                    actions.append(document.createTextNode(" "), off);
                }
                return cells(row, [ a.id, name, role, max, now, actions ]);
            }));
        }
        async function reloadTeam() {
            const answer = await api("GET", sitePath() + "/agents");
            if (answer.ok) {
                team = Array.isArray(answer.body) ? answer.body : answer.body && answer.body.agents || [];
                renderAgents();
            }
        }
        $("agent-create").addEventListener("submit", async event => {
            event.preventDefault();
            const form = event.target;
            const data = new FormData(form);
            const doc = {
                id: String(data.get("id")).trim(),
                name: String(data.get("name")).trim(),
                password: String(data.get("password")),
                role: String(data.get("role")),
                max_chats: Number(data.get("max_chats")) || 3
            };
            const email = String(data.get("email") || "").trim();
            if (email) doc.email = email;
            const answer = await api("POST", sitePath() + "/agents", doc);
            if (!answer.ok) {
                setStatus("agents", answer.message, true);
                return;
            }
            form.reset();
            setStatus("agents", "Added " + doc.id + ". They can sign in now.");
            reloadTeam();
        });
        const DAYS = [ [ "mon", "Mon" ], [ "tue", "Tue" ], [ "wed", "Wed" ], [ "thu", "Thu" ], [ "fri", "Fri" ], [ "sat", "Sat" ], [ "sun", "Sun" ] ];
        const hoursForm = $("hours-form");
        const zones = $("zones");
        try {
            if (typeof Intl.supportedValuesOf === "function") {
                zones.replaceChildren(...Intl.supportedValuesOf("timeZone").map(z => el("option", {
                    value: z
                })));
            }
        } catch (e) {}
        $("hours-days").replaceChildren(...DAYS.flatMap(([key, text]) => [ el("label", {
            for: "hours-" + key
        }, text), el("input", {
            id: "hours-" + key,
            name: "day-" + key,
            "data-testid": "hours-" + key,
            placeholder: "closed",
            autocomplete: "off"
        }) ]));
        function syncAlways() {
            $("hours-fields").disabled = hoursForm.elements.always.checked;
            if (!hoursForm.elements.always.checked && !hoursForm.elements.timezone.value) {
                hoursForm.elements.timezone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
            }
        }
        hoursForm.elements.always.addEventListener("change", syncAlways);
        function renderHours() {
            const hours = siteDoc.hours || {};
            const always = Boolean(hours.always_open) || !hours.timezone;
            hoursForm.elements.always.checked = always;
            hoursForm.elements.timezone.value = hours.timezone || "";
            for (const [key] of DAYS) {
                const ranges = hours.week && hours.week[key] || [];
                hoursForm.elements["day-" + key].value = ranges.map(r => r[0] + "-" + r[1]).join(", ");
            }
            hoursForm.elements.closures.value = (hours.closures || []).map(c => c.date + (c.note ? " " + c.note : "")).join("\n");
            $("hours-fields").disabled = always;
        }
        hoursForm.addEventListener("submit", async event => {
            event.preventDefault();
            if (!siteDoc) return;
            const f = hoursForm.elements;
            if (f.always.checked) {
                if (await save("hours", {
                    hours: null
                })) renderHours();
                return;
            }
            const week = {};
            for (const [key] of DAYS) {
                const ranges = f["day-" + key].value.split(/[,;]+/).map(r => r.trim()).filter(Boolean).map(r => {
                    const parts = r.split(/\s*[-\u2013\u2014]\s*|\s+to\s+/);
                    return parts.length === 2 ? parts : [ r, "" ];
                });
                if (ranges.length) week[key] = ranges;
            }
            const closures = f.closures.value.split("\n").map(line => line.trim()).filter(Boolean).map(line => {
                const [date, ...note] = line.split(/\s+/);
                return note.length ? {
                    date,
                    note: note.join(" ")
                } : {
                    date
                };
            });
            if (await save("hours", {
                hours: {
                    timezone: f.timezone.value.trim(),
                    week,
                    closures
                }
            })) {
                renderHours();
                setStatus("hours", "Saved. Visitors see the new hours now.");
            }
        });
        const SNIPPET = [ {
            name: "shortcut",
            label: "shortcut",
            max: 30
        }, {
            name: "text",
            label: "Text the agent sends",
            type: "textarea",
            max: 2e3
        } ];
        const snippetRows = $("snippet-rows");
        function renderSnippets() {
            snippetRows.replaceChildren();
            for (const s of siteDoc.console.snippets || []) addRow(snippetRows, SNIPPET, s);
            if (!snippetRows.children.length) addRow(snippetRows, SNIPPET);
        }
        $("snippets-form").addEventListener("submit", async event => {
            event.preventDefault();
            if (!siteDoc) return;
            const edited = readRows(snippetRows, [ "shortcut", "text" ]).map(s => ({
                shortcut: s.shortcut.trim().replace(/^\//, ""),
                text: s.text
            }));
            if (await save("snippets", {
                console: consoleWith({
                    snippets: edited
                })
            })) {
                if (Array.isArray(siteDoc.console.snippets)) snippets = siteDoc.console.snippets;
                renderSnippets();
                setStatus("snippets", "Saved. Type /" + (snippets[0] ? snippets[0].shortcut : "shortcut") + " in a reply.");
            }
        });
        const FAQ = [ {
            name: "title",
            label: "Title",
            max: 100
        }, {
            name: "url",
            label: "https://\u2026",
            type: "url",
            wide: true
        }, {
            name: "keywords",
            label: "keywords, comma separated"
        } ];
        const faqRows = $("faq-rows");
        const widgetForm = $("widget-form");
        function renderWidget() {
            const widget = siteDoc.widget || {};
            $("presence-label").hidden = !("presence" in widget);
            widgetForm.elements.presence.checked = widget.presence === true;
            faqRows.replaceChildren();
            for (const item of widget.faq || []) {
                addRow(faqRows, FAQ, {
                    title: item.title,
                    url: item.url,
                    keywords: (item.keywords || []).join(", ")
                });
            }
            if (!faqRows.children.length) addRow(faqRows, FAQ);
        }
        widgetForm.addEventListener("submit", async event => {
            event.preventDefault();
            if (!siteDoc) return;
            const faq = readRows(faqRows, [ "title", "url" ]).map(item => {
                const keywords = item.keywords.split(",").map(k => k.trim()).filter(Boolean);
                return keywords.length ? {
                    title: item.title.trim(),
                    url: item.url.trim(),
                    keywords
                } : {
                    title: item.title.trim(),
                    url: item.url.trim()
                };
            });
            const widget = Object.assign({}, siteDoc.widget, {
                faq
            });
            if ("presence" in siteDoc.widget) widget.presence = widgetForm.elements.presence.checked;
            if (await save("widget", {
                widget
            })) renderWidget();
        });
        const RULE = [ {
            name: "id",
            label: "rule id",
            max: 40
        }, {
            name: "text",
            label: "Invitation text",
            max: 300,
            wide: true
        }, {
            name: "url_contains",
            label: "address contains",
            max: 200
        }, {
            name: "kind",
            label: "when",
            type: "select",
            options: [ [ "min_pages", "after N matching pages" ], [ "min_seconds", "after N seconds on a page" ] ]
        }, {
            name: "value",
            label: "N",
            type: "number",
            min: 1,
            maxValue: 3600
        } ];
        const ruleRows = $("rule-rows");
        function renderRules() {
            ruleRows.replaceChildren();
            for (const r of siteDoc.console.rules || []) {
                const kind = "min_pages" in r ? "min_pages" : "min_seconds";
                addRow(ruleRows, RULE, Object.assign({}, r, {
                    kind,
                    value: r[kind]
                }));
            }
            if (!ruleRows.children.length) addRow(ruleRows, RULE, {
                kind: "min_pages",
                value: 2
            });
        }
        $("rules-form").addEventListener("submit", async event => {
            event.preventDefault();
            if (!siteDoc) return;
            const rules = readRows(ruleRows, [ "text", "url_contains" ]).map((r, i) => {
                const id = r.id.trim() || (r.url_contains.replace(/[^A-Za-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "") || "rule").slice(0, 30) + "-" + (i + 1);
                return {
                    id,
                    text: r.text,
                    url_contains: r.url_contains,
                    [r.kind]: Number(r.value)
                };
            });
            if (await save("rules", {
                console: consoleWith({
                    rules
                })
            })) renderRules();
        });
        const holdingForm = $("holding-form");
        function renderHolding() {
            const holding = siteDoc.console.holding || {};
            holdingForm.elements.enabled.checked = holding.enabled !== false;
            holdingForm.elements.after_seconds.value = String(holding.after_seconds || 90);
            holdingForm.elements.text.value = holding.text || "";
        }
        holdingForm.addEventListener("submit", async event => {
            event.preventDefault();
            if (!siteDoc) return;
            const f = holdingForm.elements;
            const holding = {
                enabled: f.enabled.checked,
                after_seconds: Number(f.after_seconds.value),
                text: f.text.value
            };
            if (await save("holding", {
                console: consoleWith({
                    holding
                })
            })) renderHolding();
        });
        const originsForm = $("origins-form");
        function renderOrigins() {
            originsForm.elements.origins.value = (siteDoc.console.origins || []).join("\n");
        }
        originsForm.addEventListener("submit", async event => {
            event.preventDefault();
            if (!siteDoc) return;
            const origins = originsForm.elements.origins.value.split(/\s+/).map(o => o.trim().replace(/\/$/, "")).filter(Boolean);
            if (await save("origins", {
                console: consoleWith({
                    origins
                })
            })) renderOrigins();
        });
        for (const button of document.querySelectorAll("[data-add]")) {
            button.addEventListener("click", () => {
                const kind = button.getAttribute("data-add");
                const [rows, fields, values] = kind === "snippet" ? [ snippetRows, SNIPPET ] : kind === "faq" ? [ faqRows, FAQ ] : [ ruleRows, RULE, {
                    kind: "min_pages",
                    value: 2
                } ];
                const row = addRow(rows, fields, values);
                row.querySelector("input, textarea").focus();
            });
        }
    }
    {
        const NS = "http://www.w3.org/2000/svg";
        const from = $("rep-from");
        const to = $("rep-to");
        const who = $("rep-agent");
        const state = $("rep-state");
        let agentsLoaded = false;
        const sitePath = () => "/sites/" + encodeURIComponent(site);
        function pad(n) {
            return String(n).padStart(2, "0");
        }
        function isoDay(d) {
            return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
        }
        function query(extra) {
            const params = new URLSearchParams({
                from: from.value,
                to: to.value
            });
            if (who.value) params.set("agent", who.value);
            for (const [k, v] of Object.entries(extra || {})) params.set(k, v);
            return sitePath() + "/reports?" + params.toString();
        }
        function secs(v) {
            if (v === null || v === undefined) return "\u2014";
            return v < 90 ? Math.round(v * 10) / 10 + " s" : duration(v * 1e3);
        }
        function pct(v) {
            return v === null || v === undefined ? "\u2014" : Math.round(v * 100) + " %";
        }
        function svg(tag, attrs, text) {
            const node = document.createElementNS(NS, tag);
            for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
            if (text !== undefined) node.textContent = String(text);
            return node;
        }
        function titled(node, text) {
            node.append(svg("title", {}, text));
            return node;
        }
        onView("reports", {
            show() {
                if (!to.value) {
                    const today = new Date;
                    const week = new Date(today);
                    week.setDate(today.getDate() - 6);
                    from.value = isoDay(week);
                    to.value = isoDay(today);
                }
                if (!agentsLoaded) loadAgents();
                load();
            }
        });
        async function loadAgents() {
            const answer = await api("GET", sitePath() + "/agents");
            if (!answer.ok || !answer.body) return;
            agentsLoaded = true;
            const keep = who.value;
            who.replaceChildren(el("option", {
                value: ""
            }, "Everyone"), ...(answer.body.agents || []).map(a => el("option", {
                value: a.id
            }, a.name + " (" + a.id + ")")));
            who.value = keep;
        }
        async function load() {
            if (!site || !from.value || !to.value) return;
            state.textContent = "Loading\u2026";
            const answer = await api("GET", query());
            if (!answer.ok) {
                state.textContent = answer.message;
                return;
            }
            render(answer.body);
        }
        $("rep-form").addEventListener("submit", event => {
            event.preventDefault();
            load();
        });
        $("rep-csv").addEventListener("click", async () => {
            const result = await download(query({
                format: "csv"
            }), "report.csv");
            if (!result.ok) toast(result.message, true);
        });
        function row(values, attrs) {
            const tr = el("tr", attrs);
            for (const value of values) tr.append(el("td", {}, value));
            return tr;
        }
        function render(doc) {
            const t = doc.totals;
            $("rep-zone").textContent = "\xb7 days in " + (doc.timezone || "UTC");
            state.textContent = t.chats ? doc.from + " to " + doc.to + (doc.agent ? " \xb7 " + doc.agent : "") : "No chats from " + doc.from + " to " + doc.to + ".";
            const tiles = [ [ "chats", "chats", String(t.chats) ], [ "wait_median_s", "median wait", secs(t.wait_median_s) ], [ "wait_p90_s", "p90 wait", secs(t.wait_p90_s) ], [ "first_response_median_s", "median first response", secs(t.first_response_median_s) ], [ "first_response_p90_s", "p90 first response", secs(t.first_response_p90_s) ], [ "missed_share", "missed (" + t.missed + ")", pct(t.missed_share) ], [ "abandoned_share", "abandoned (" + t.abandoned + ")", pct(t.abandoned_share) ], [ "satisfaction", "satisfied (" + t.rated_up + " up, " + t.rated_down + " down)", pct(t.satisfaction) ], [ "after_hours", "after hours (" + t.offline_messages + " left a message)", String(t.after_hours_chats + t.offline_messages) ], [ "email_conversations", "by email (" + t.chat_conversations + " chats; first reply in " + secs(t.email_answer_avg_s) + " on average)", String(t.email_conversations) ] ];
            $("rep-totals").replaceChildren(...tiles.map(([key, label, value]) => {
                const tile = el("div", {
                    class: "stat",
                    "data-figure": key
                });
                tile.append(el("span", {}, value), document.createTextNode(label));
                return tile;
            }));
            $("rep-days").replaceChildren(...doc.days.map(d => row([ d.date, String(d.chats), String(d.missed), String(d.abandoned), secs(d.wait_median_s) + " / " + secs(d.wait_p90_s), secs(d.first_response_median_s) + " / " + secs(d.first_response_p90_s), pct(d.satisfaction), String(d.after_hours_chats + d.offline_messages) ], {
                "data-day": d.date
            })));
            $("rep-agents").replaceChildren(...doc.agents.length ? doc.agents.map(a => row([ a.name + " (" + a.agent + ")", String(a.chats), String(a.missed), String(a.abandoned), secs(a.wait_median_s) + " / " + secs(a.wait_p90_s), secs(a.first_response_median_s) + " / " + secs(a.first_response_p90_s), pct(a.satisfaction), String(a.transfers) ], {
                "data-agent": a.agent
            })) : [ row([ "No agent handled a chat in these days." ]) ]);
            drawn = doc;
            drawCharts();
        }
        let drawn = null;
        let W = 640;
        const AXIS_LABEL = 44;
        function drawCharts() {
            if (!drawn || $("view-reports").hidden) return;
            W = Math.max(280, Math.round($("rep-days-chart").getBoundingClientRect().width) || 640);
            daysChart(drawn.days);
            timesChart(drawn.days);
            hoursChart(drawn.hours_of_week);
        }
        let resizing = null;
        window.addEventListener("resize", () => {
            clearTimeout(resizing);
            resizing = setTimeout(drawCharts, 150);
        });
        function daysChart(days) {
            const chart = $("rep-days-chart");
            const H = 150;
            const top = Math.max(1, ...days.map(d => d.chats));
            const step = (W - 40) / Math.max(1, days.length);
            chart.setAttribute("viewBox", "0 0 " + W + " " + (H + 20));
            const parts = [ svg("text", {
                x: 0,
                y: 12,
                class: "axis"
            }, top), svg("text", {
                x: 0,
                y: H,
                class: "axis"
            }, 0), svg("line", {
                x1: 30,
                y1: H,
                x2: W,
                y2: H,
                class: "base"
            }) ];
            days.forEach((d, i) => {
                const x = 36 + i * step;
                let y = H;
                for (const [key, cls] of [ [ "answered", "ok" ], [ "missed", "missed" ], [ "abandoned", "abandoned" ] ]) {
                    const h = (H - 16) * d[key] / top;
                    if (!h) continue;
                    y -= h;
                    parts.push(titled(svg("rect", {
                        x,
                        y,
                        width: Math.max(2, step * .7),
                        height: h,
                        class: cls,
                        "data-day": d.date,
                        "data-kind": key,
                        "data-value": d[key]
                    }), d.date + ": " + d[key] + " " + key));
                }
                if (i % Math.max(1, Math.ceil(AXIS_LABEL / step)) === 0) {
                    parts.push(svg("text", {
                        x,
                        y: H + 15,
                        class: "axis"
                    }, d.date.slice(5)));
                }
            });
            chart.replaceChildren(...parts);
        }
        function timesChart(days) {
            const chart = $("rep-times-chart");
            const H = 150;
            const values = days.flatMap(d => [ d.wait_median_s, d.first_response_median_s ]).filter(v => v !== null);
            const top = Math.max(1, ...values);
            const step = (W - 40) / Math.max(1, days.length);
            chart.setAttribute("viewBox", "0 0 " + W + " " + (H + 20));
            const parts = [ svg("text", {
                x: 0,
                y: 12,
                class: "axis"
            }, Math.round(top)), svg("text", {
                x: 0,
                y: H,
                class: "axis"
            }, 0), svg("line", {
                x1: 30,
                y1: H,
                x2: W,
                y2: H,
                class: "base"
            }) ];
            for (const [key, cls, name] of [ [ "wait_median_s", "wait", "median wait" ], [ "first_response_median_s", "frt", "median first response" ] ]) {
                const points = [];
                days.forEach((d, i) => {
                    if (d[key] === null) return;
                    const x = 36 + i * step + step * .35;
                    const y = H - (H - 16) * d[key] / top;
                    points.push(x.toFixed(1) + "," + y.toFixed(1));
                    parts.push(titled(svg("circle", {
                        cx: x,
                        cy: y,
                        r: 3,
                        class: cls,
                        "data-day": d.date,
                        "data-kind": key
                    }), d.date + ": " + name + " " + secs(d[key])));
                });
                if (points.length > 1) parts.unshift(svg("polyline", {
                    points: points.join(" "),
                    class: cls
                }));
            }
            chart.replaceChildren(...parts);
        }
        function hoursChart(week) {
            const chart = $("rep-hours-chart");
            const left = 40;
            const cell = Math.max(14, Math.min(28, Math.floor((W - left) / 24)));
            const counts = week.chats;
            const top = Math.max(1, ...counts.flat());
            chart.setAttribute("viewBox", "0 0 " + (left + 24 * cell) + " " + (18 + 7 * cell));
            const parts = [];
            for (let h = 0; h < 24; h += 3) parts.push(svg("text", {
                x: left + h * cell,
                y: 12,
                class: "axis"
            }, pad(h)));
            week.days.forEach((name, d) => {
                parts.push(svg("text", {
                    x: 0,
                    y: 18 + d * cell + cell / 2 + 4,
                    class: "axis"
                }, name));
                for (let h = 0; h < 24; h += 1) {
                    const n = counts[d][h];
                    parts.push(titled(svg("rect", {
                        x: left + h * cell,
                        y: 18 + d * cell,
                        width: cell - 2,
                        height: cell - 2,
                        class: n ? "heat" : "heat none",
                        "fill-opacity": n ? (.2 + .8 * n / top).toFixed(2) : 1,
                        "data-day": name,
                        "data-hour": h,
                        "data-chats": n
                    }), name + " " + pad(h) + ":00: " + n + (n === 1 ? " chat" : " chats")));
                }
            });
            chart.replaceChildren(...parts);
        }
    }
    if (token) startConsole(); else showLogin("");
})();
