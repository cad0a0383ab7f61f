// The emulator's consent popup (/o/oauth2/v2/auth): hands the result back to the page
// that opened it. Messages are addressed to the origin the request came from (checked
// by the server), never to '*', so no other page can read a code.
(() => {
  'use strict';
  const data = JSON.parse(document.getElementById('gis-data').textContent);
  const send = (message) => {
    if (!window.opener) return false;
    window.opener.postMessage({ ...message, request_id: data.request_id }, data.origin);
    return true;
  };

  if (data.response) {
    // After Allow: the code goes to the opener, and the popup closes.
    if (send({ type: 'gis-emulator/code-response', response: data.response })) {
      window.close();
    } else {
      document.getElementById('status').textContent = 'No page is waiting for this code; close this window.';
    }
    return;
  }

  document.getElementById('cancel')?.addEventListener('click', () => {
    send({ type: 'gis-emulator/cancel' });
    window.close();
  });
})();
