// Google Identity Services stand-in, served by the Google emulator at /gsi/client.
//
// The code model's popup flow, as a page uses it with Google's own script:
//   const client = google.accounts.oauth2.initCodeClient({client_id, scope, ux_mode: 'popup',
//     access_type, include_granted_scopes, prompt, login_hint, state, callback, error_callback});
//   client.requestCode();   // from a click: opens the consent popup
// The popup is the emulator's consent page (/o/oauth2/v2/auth). On Allow it mints a real
// emulator code and posts it back to this window, addressed to this page's origin only;
// callback({code, scope, state}) follows. Cancel or closing the popup calls
// error_callback({type: 'popup_closed'}); a blocked popup, {type: 'popup_failed_to_open'}.
(() => {
  'use strict';
  const EMULATOR = __EMULATOR_ORIGIN__; // the emulator's origin, filled in by the server
  const AUTH_URL = `${EMULATOR}/o/oauth2/v2/auth`;
  const PASSED_ON = ['access_type', 'prompt', 'login_hint', 'hd', 'state'];

  function randomId() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function initCodeClient(config) {
    if (!config || typeof config.client_id !== 'string' || config.client_id === '') {
      throw new TypeError('initCodeClient: client_id is required');
    }
    if (typeof config.scope !== 'string' || config.scope.trim() === '') {
      throw new TypeError('initCodeClient: scope is required');
    }
    if ((config.ux_mode ?? 'popup') !== 'popup') {
      throw new TypeError("initCodeClient: the emulator supports ux_mode 'popup' only");
    }
    if (typeof config.callback !== 'function') {
      throw new TypeError('initCodeClient: callback is required in popup mode');
    }
    return { requestCode: () => requestCode(config) };
  }

  function requestCode(config) {
    const requestId = randomId();
    const params = new URLSearchParams({
      client_id: config.client_id,
      scope: config.scope,
      redirect_uri: 'postmessage',
      response_type: 'code',
      include_granted_scopes: String(config.include_granted_scopes !== false), // GIS default: true
      origin: window.location.origin, // where the popup may post the code, and nowhere else
      request_id: requestId,
    });
    for (const name of PASSED_ON) {
      if (config[name] !== undefined && config[name] !== null && config[name] !== '') {
        params.set(name, String(config[name]));
      }
    }
    const fail = (type, message) => {
      if (typeof config.error_callback === 'function') config.error_callback({ type, message });
    };
    const popup = window.open(`${AUTH_URL}?${params}`, 'g_auth_code_window', 'popup,width=520,height=720');
    if (!popup) {
      fail('popup_failed_to_open', 'Failed to open popup window');
      return;
    }

    let settled = false;
    let watch = 0;
    const settle = () => {
      settled = true;
      window.removeEventListener('message', onMessage);
      clearInterval(watch);
    };
    function onMessage(event) {
      // Only our popup, from the emulator's origin, answering this request.
      if (event.origin !== EMULATOR || event.source !== popup) return;
      const data = event.data;
      if (!data || typeof data !== 'object' || data.request_id !== requestId || settled) return;
      if (data.type === 'gis-emulator/code-response') {
        settle();
        config.callback(data.response);
      } else if (data.type === 'gis-emulator/cancel') {
        settle();
        fail('popup_closed', 'Popup window closed');
      }
    }
    window.addEventListener('message', onMessage);
    watch = setInterval(() => {
      if (settled || !popup.closed) return;
      clearInterval(watch);
      // A code posted just before the popup closed may still be on its way.
      setTimeout(() => {
        if (settled) return;
        settle();
        fail('popup_closed', 'Popup window closed');
      }, 300);
    }, 200);
  }

  function grantedScopes(response) {
    return new Set(String(response?.scope ?? '').split(' ').filter(Boolean));
  }

  function hasGrantedAllScopes(response, first, ...rest) {
    const granted = grantedScopes(response);
    return [first, ...rest].every((scope) => granted.has(scope));
  }

  function hasGrantedAnyScope(response, first, ...rest) {
    const granted = grantedScopes(response);
    return [first, ...rest].some((scope) => granted.has(scope));
  }

  const google = (window.google = window.google || {});
  google.accounts = google.accounts || {};
  google.accounts.oauth2 = { initCodeClient, hasGrantedAllScopes, hasGrantedAnyScope };
})();
