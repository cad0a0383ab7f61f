// Example frontend for the Google offline access API: the whole flow with the Google
// Identity Services code model (popup), and the reaction to each error `code`.
//
// Configuration comes from config.json next to this file (infra/dev writes it):
//   apiBaseUrl            "https://<api-id>.execute-api.<region>.amazonaws.com" (API Gateway), or
//                         "http://127.0.0.1:9000/lambda-url/{function}" (cargo lambda watch:
//                         {function} is replaced by the function serving the route)
//   clientId              the OAuth client ID
//   googleClientScriptUrl "https://accounts.google.com/gsi/client" (or the emulator's /gsi/client)

const CALENDAR_EVENTS = 'https://www.googleapis.com/auth/calendar.events';
const CALENDAR_SCOPES = [CALENDAR_EVENTS, 'https://www.googleapis.com/auth/calendar'];
const SIGN_IN_SCOPES = 'openid email profile';
// Which function serves each route (the `{function}` of a local apiBaseUrl).
const FUNCTIONS = {
  '/auth/exchange': 'exchange',
  '/auth/upgrade': 'upgrade',
  '/calendar/events': 'events',
  '/me': 'account',
  '/me/google': 'account',
};
// The CSRF header /auth/exchange and /auth/upgrade require from browsers.
const XRW = { 'X-Requested-With': 'XMLHttpRequest' };

const $ = (id) => document.getElementById(id);
let config;
// The signed-in user. The ID token is the bearer for every later call; it stays in
// memory only (a reload signs out), never in localStorage.
const session = { idToken: null, user: null, me: null };
// One Idempotency-Key per event the user means to create: a retry after a failure reuses
// it (so it can never create a second event); editing the form starts a new one.
let eventKey = null;
// Only the latest popup counts: a window closed earlier must not overwrite a newer result.
let latestRequest = 0;

// ------------------------------------------------------------------ the API

class Problem extends Error {
  // An RFC 9457 problem document from the API (or a stand-in for a network failure).
  constructor(status, body, headers) {
    super(body?.detail || body?.title || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code ?? (status === 0 ? 'network_error' : 'unknown');
    this.body = body ?? {};
    this.retryAfter = headers?.get('Retry-After');
  }
}

function routeUrl(route, query) {
  const base = config.apiBaseUrl.replace('{function}', FUNCTIONS[route]).replace(/\/+$/, '');
  return base + route + (query ? `?${new URLSearchParams(query)}` : '');
}

async function api(method, route, { body, headers = {}, query, bearer = true } = {}) {
  const url = routeUrl(route, query);
  const sent = { ...headers };
  if (body !== undefined) sent['Content-Type'] = 'application/json';
  if (bearer) sent.Authorization = `Bearer ${session.idToken}`;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      mode: 'cors',
      credentials: 'omit', // the bearer token is the only credential
      cache: 'no-store',
    });
  } catch {
    // fetch rejects without details on network errors and CORS refusals alike.
    logCall(method, route, 'no answer');
    throw new Problem(0, { detail: `Could not reach the API at ${url} (network error, or the API refused this origin: CORS).` });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  logCall(method, route, response.status, response.ok ? '' : data?.code);
  if (!response.ok) throw new Problem(response.status, data, response.headers);
  return { status: response.status, data, headers: response.headers };
}

// ------------------------------------------------------------------ Google Identity Services

// Opens Google's popup (must run from a click) and resolves with the code response.
function requestCode(options) {
  clearNotice();
  const request = ++latestRequest;
  return new Promise((resolve, rejectNow) => {
    const reject = (problem) => rejectNow(request === latestRequest ? problem : new Problem(0, { code: 'superseded' }));
    const state = crypto.randomUUID(); // echoed back by Google: this answer is for this request
    const client = google.accounts.oauth2.initCodeClient({
      client_id: config.clientId,
      ux_mode: 'popup',
      access_type: 'offline', // a refresh token, so the backend can act while the user is away
      include_granted_scopes: true, // incremental authorization: keep what was granted before
      state,
      ...options,
      callback: (response) => {
        if (response.error) {
          const why = response.error_description ? `: ${response.error_description}` : '';
          reject(new Problem(0, { code: `google_${response.error}`, detail: `Google answered ${response.error}${why}.` }));
        } else if (response.state !== state) {
          reject(new Problem(0, { detail: 'Google answered a different request; try again.' }));
        } else if (request !== latestRequest) {
          reject(null); // another popup was opened since
        } else {
          resolve(response); // { code, scope, state }
        }
      },
      // The popup could not open, or was closed without an answer: type popup_failed_to_open / popup_closed.
      error_callback: (error) => reject(new Problem(0, { code: error.type, detail: error.message })),
    });
    client.requestCode();
  });
}

// Sign in with offline access. `consent` forces Google's consent screen, which is what
// makes Google issue a new refresh token when it already gave one before.
async function signIn({ consent = false } = {}) {
  try {
    const response = await requestCode({
      scope: SIGN_IN_SCOPES,
      ...(consent ? { prompt: 'consent' } : {}),
      ...(session.user ? { login_hint: session.user.email } : {}),
    });
    busy(true);
    const { data } = await api('POST', '/auth/exchange', { headers: XRW, body: { code: response.code }, bearer: false });
    session.idToken = data.id_token;
    session.user = data.user;
    await loadMe();
    if (!data.offline_access) {
      react(new Problem(409, { code: 'offline_access_required', detail: 'Google did not give this app offline access.' }));
    } else {
      notice('success', `Signed in as ${data.user.name || data.user.email}, with offline access.`);
    }
  } catch (error) {
    react(error);
  } finally {
    busy(false);
  }
}

// Incremental authorization: ask for Calendar only, keeping the scopes granted before.
async function connectCalendar() {
  if (!session.idToken) {
    notice('info', 'Sign in with Google first.');
    return;
  }
  try {
    const response = await requestCode({ scope: CALENDAR_EVENTS, login_hint: session.user.email });
    busy(true);
    await api('POST', '/auth/upgrade', { headers: XRW, body: { code: response.code, scopes: [CALENDAR_EVENTS] } });
    await loadMe();
    notice('success', 'Google Calendar connected: the backend can now create events for you.');
  } catch (error) {
    react(error);
  } finally {
    busy(false);
  }
}

// ------------------------------------------------------------------ actions

async function loadMe() {
  const { data } = await api('GET', '/me');
  session.me = data;
  render();
  if (data.status === 'reauthorization_required') {
    react(new Problem(401, { code: 'reauthorization_required', detail: 'Google no longer accepts the stored grant.' }));
  }
}

async function createEvent(form) {
  const start = new Date(form.start.value);
  const end = new Date(start.getTime() + Number(form.minutes.value) * 60_000);
  const event = {
    summary: form.summary.value.trim(),
    start: { dateTime: start.toISOString() },
    end: { dateTime: end.toISOString() },
  };
  if (form.location.value.trim()) event.location = form.location.value.trim();
  eventKey ??= crypto.randomUUID();
  clearNotice();
  busy(true);
  try {
    const { status, data, headers } = await api('POST', '/calendar/events', {
      query: { sendUpdates: 'none' },
      headers: { 'Idempotency-Key': eventKey },
      body: event,
    });
    eventKey = null;
    showEvent(data, status === 200 && headers.get('Idempotent-Replayed') === 'true');
    notice('success', `Event created in your Google Calendar: ${data.summary ?? event.summary}.`);
  } catch (error) {
    react(error);
  } finally {
    busy(false);
  }
}

async function disconnect() {
  clearNotice();
  busy(true);
  try {
    await api('DELETE', '/me/google');
    $('event-result').hidden = true;
    await loadMe();
    notice('success', 'Disconnected: the backend revoked its access at Google and deleted the stored grant.');
  } catch (error) {
    react(error);
  } finally {
    busy(false);
  }
}

function signOut() {
  session.idToken = session.user = session.me = null;
  $('event-result').hidden = true;
  render();
  notice('info', 'Signed out of this page. The backend keeps its grant until you disconnect.');
}

// ------------------------------------------------------------------ error codes

// What the page does for each error `code` (docs/api.md, "What to do on each error code").
function react(error) {
  if (!(error instanceof Problem)) {
    console.error(error);
    notice('error', `Something went wrong: ${error.message}`);
    return;
  }
  switch (error.code) {
    case 'superseded':
      break; // a newer popup answers instead
    case 'offline_access_required':
      // No refresh token is stored: only Google's consent screen issues a new one.
      notice('warn', `${error.message} Ask Google again, with the consent screen, to allow offline access.`, {
        label: 'Allow offline access',
        run: () => signIn({ consent: true }),
      });
      break;
    case 'scope_required':
    case 'scope_not_granted':
      // The user has not (or just did not) tick Calendar: incremental authorization again.
      notice('warn', 'Calendar access was not granted. Connect Google Calendar and leave its box ticked to create events.', {
        label: 'Connect Google Calendar',
        run: connectCalendar,
      });
      break;
    case 'reauthorization_required':
      // The stored refresh token is dead (revoked, expired): a new sign-in with consent.
      notice('error', 'Your Google access has expired or was revoked. Sign in with Google again to reconnect.', {
        label: 'Sign in again',
        run: () => signIn({ consent: true }),
      });
      break;
    case 'unauthenticated':
      // The ID token expired (after about an hour) or is no longer accepted.
      session.idToken = session.user = session.me = null;
      render();
      notice('error', `${error.message} Please sign in again.`, { label: 'Sign in', run: () => signIn() });
      break;
    case 'popup_closed':
      notice('info', 'The Google window was closed before finishing. Nothing changed.');
      break;
    case 'popup_failed_to_open':
      notice('error', 'The browser blocked the Google popup. Allow popups for this page and try again.');
      break;
    default: {
      let text = error.message;
      for (const problem of error.body.errors ?? []) text += ` ${problem.field ? `${problem.field}: ` : ''}${problem.message}`;
      if (error.retryAfter) text += ` Try again in ${error.retryAfter} s.`;
      notice('error', text);
    }
  }
}

// ------------------------------------------------------------------ rendering

function render() {
  const me = session.me;
  $('signed-out').hidden = Boolean(session.idToken);
  $('signed-in').hidden = !session.idToken;
  $('calendar').hidden = !session.idToken;
  if (!session.idToken || !me) return;
  const user = me.user ?? session.user;
  $('picture').src = user.picture ?? '';
  $('picture').hidden = !user.picture;
  $('name').textContent = user.name ?? user.email;
  $('email').textContent = user.email + (user.hd ? ` (${user.hd})` : '');
  $('status').textContent = me.status.replaceAll('_', ' ');
  $('status').dataset.status = me.status;
  $('offline').textContent = me.offline_access ? 'yes: a refresh token is stored' : 'no';
  $('scopes').replaceChildren(
    ...(me.granted_scopes.length ? me.granted_scopes : ['none']).map((scope) => {
      const item = document.createElement('li');
      item.textContent = scope;
      return item;
    }),
  );
  $('updated').textContent = me.updated_at ? new Date(me.updated_at).toLocaleString() : '-';
  // Google ends time-limited access (and every grant of a consent screen in Testing) on its
  // own: say when, and offer to sign in again with offline access before then.
  const expires = me.grant_expires_at ? new Date(me.grant_expires_at) : null;
  $('grant-expiry').hidden = !expires;
  $('grant-expiry').dataset.expiresAt = me.grant_expires_at ?? '';
  $('grant-expiry-text').textContent = expires
    ? `Google will end this access on ${expires.toLocaleString(undefined, { dateStyle: 'long', timeStyle: 'short' })}.`
    : '';
  const active = me.status === 'active';
  // Not connected: a plain sign-in. Reauthorization: a new refresh token, so consent.
  $('connect-google').hidden = active;
  $('connect-google').textContent = me.status === 'not_connected' ? 'Connect Google account' : 'Sign in again';
  $('disconnect').hidden = me.status === 'not_connected';
  const calendar = me.granted_scopes.some((scope) => CALENDAR_SCOPES.includes(scope));
  $('connect-calendar').hidden = calendar || !active;
  $('calendar-state').textContent = !active
    ? 'Your Google account is not connected: connect it first.'
    : calendar
      ? 'Connected: events are created by the backend with the stored refresh token.'
      : 'Not connected yet: the backend needs your permission to add events to your calendar.';
}

function showEvent(event, replayed) {
  const link = $('event-link');
  link.textContent = event.summary ?? event.id;
  const href = safeUrl(event.htmlLink);
  if (href) link.href = href;
  else link.removeAttribute('href');
  $('event-outcome').textContent = replayed ? 'Already created (same Idempotency-Key)' : 'Created';
  const when = event.start?.dateTime ? new Date(event.start.dateTime).toLocaleString() : event.start?.date;
  $('event-details').textContent = `${when ?? ''} · id ${event.id} · ${event.status ?? ''}`;
  $('event-result').hidden = false;
}

function safeUrl(value) {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}

function clearNotice() {
  $('notice').hidden = true;
  $('notice-text').textContent = '';
}

function notice(kind, text, action) {
  $('notice').hidden = false;
  $('notice').dataset.kind = kind;
  $('notice-text').textContent = text;
  const button = $('notice-action');
  button.hidden = !action;
  button.textContent = action?.label ?? '';
  button.onclick = action ? () => action.run() : null;
}

function busy(on) {
  document.body.classList.toggle('busy', on);
  for (const button of document.querySelectorAll('button')) button.disabled = on;
}

function logCall(method, route, status, code) {
  const item = document.createElement('li');
  item.textContent = `${new Date().toLocaleTimeString()}  ${method} ${route} → ${status}${code ? ` ${code}` : ''}`;
  $('log').prepend(item);
  while ($('log').children.length > 30) $('log').lastChild.remove();
}

function defaultStart() {
  const start = new Date(Date.now() + 24 * 3600_000);
  start.setHours(10, 0, 0, 0);
  const pad = (n) => String(n).padStart(2, '0');
  return `${start.getFullYear()}-${pad(start.getMonth() + 1)}-${pad(start.getDate())}T10:00`;
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = src;
    script.async = true;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(script);
  });
}

// ------------------------------------------------------------------ start

async function main() {
  try {
    const response = await fetch('config.json', { cache: 'no-store' });
    if (!response.ok) throw new Error(`config.json: HTTP ${response.status}`);
    config = await response.json();
    for (const key of ['apiBaseUrl', 'clientId', 'googleClientScriptUrl']) {
      if (typeof config[key] !== 'string' || !config[key]) throw new Error(`config.json: ${key} is missing`);
    }
  } catch (error) {
    notice('error', `This page needs a config.json next to it (${error.message}). Run infra/dev, or see the README.`);
    return;
  }
  $('config-api').textContent = config.apiBaseUrl;
  $('config-gsi').textContent = config.googleClientScriptUrl;

  $('sign-in').onclick = () => signIn();
  $('connect-google').onclick = () => signIn({ consent: session.me?.status === 'reauthorization_required' });
  $('connect-calendar').onclick = connectCalendar;
  // Renewing is a new grant: Google's consent screen again, with offline access.
  $('renew-access').onclick = () => signIn({ consent: true });
  $('refresh-me').onclick = () => loadMe().catch(react);
  $('disconnect').onclick = disconnect;
  $('sign-out').onclick = signOut;
  const form = $('event-form');
  form.start.value = defaultStart();
  form.oninput = () => (eventKey = null);
  form.onsubmit = (event) => {
    event.preventDefault();
    createEvent(form);
  };

  try {
    await loadScript(config.googleClientScriptUrl);
  } catch (error) {
    notice('error', `Google's sign-in script did not load (${error.message}).`);
    return;
  }
  $('sign-in').disabled = false;
  document.body.dataset.ready = 'true';
}

main();
