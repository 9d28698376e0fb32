/**
 * ICE restart over WHIP/WHEP (RFC 9725 section 4.3): the page sends its new ICE credentials and
 * candidates as an `application/trickle-ice-sdpfrag` PATCH and applies the node's new ones to the
 * answer it already has. Nothing but ICE is renegotiated.
 */

export const SDPFRAG_TYPE = 'application/trickle-ice-sdpfrag';

const lines = (sdp) => sdp.split(/\r?\n/).filter((line) => line !== '');

/** ICE credentials, candidates and mid of the first m-section (the bundle's transport). */
function firstSectionIce(sdp) {
  const out = {
    ufrag: undefined,
    pwd: undefined,
    mid: undefined,
    mLine: undefined,
    candidates: [],
  };
  let section = 0;
  let complete = false;
  for (const line of lines(sdp)) {
    if (line.startsWith('m=')) {
      section += 1;
      if (section === 1) out.mLine = line;
      continue;
    }
    if (section > 1) continue;
    // session-level credentials count until the first m-section gives its own
    if (line.startsWith('a=ice-ufrag:')) out.ufrag = line.slice(12).trim();
    else if (line.startsWith('a=ice-pwd:')) out.pwd = line.slice(10).trim();
    else if (section === 1 && line.startsWith('a=mid:')) out.mid = line.slice(6).trim();
    else if (section === 1 && line.startsWith('a=candidate:')) out.candidates.push(line.slice(2));
    else if (section === 1 && line === 'a=end-of-candidates') complete = true;
  }
  out.complete = complete;
  return out;
}

/**
 * The PATCH body for an ICE restart, from the local offer made after `pc.restartIce()`:
 * the new ufrag and pwd and the candidates gathered so far, for the first m-section only
 * (max-bundle), as RFC 8840 lays a fragment out.
 */
export function restartFragment(offerSdp, { gatheringComplete = true } = {}) {
  const ice = firstSectionIce(offerSdp);
  if (!ice.ufrag || !ice.pwd) throw new Error('the offer has no ICE credentials');
  const out = [];
  if (ice.mLine) {
    const [kind, , proto, ...formats] = ice.mLine.slice(2).split(' ');
    out.push(`m=${kind} 9 ${proto} ${formats.join(' ')}`.trim());
    if (ice.mid !== undefined) out.push(`a=mid:${ice.mid}`);
  }
  out.push(`a=ice-ufrag:${ice.ufrag}`, `a=ice-pwd:${ice.pwd}`);
  for (const c of ice.candidates) out.push(`a=${c}`);
  if (gatheringComplete || ice.complete) out.push('a=end-of-candidates');
  return `${out.join('\r\n')}\r\n`;
}

/** The node's new credentials and candidates from its 200 answer to the PATCH. */
export function parseFragment(text) {
  let ufrag;
  let pwd;
  const candidates = [];
  for (const line of lines(text)) {
    if (line.startsWith('a=ice-ufrag:')) ufrag ??= line.slice(12).trim();
    else if (line.startsWith('a=ice-pwd:')) pwd ??= line.slice(10).trim();
    else if (line.startsWith('a=candidate:')) candidates.push(line.slice(2));
  }
  if (!ufrag || !pwd) throw new Error('the node answered the ICE restart without ICE credentials');
  return { ufrag, pwd, candidates };
}

/**
 * The answer the page already holds with the node's new ICE: every `a=ice-ufrag`/`a=ice-pwd`
 * replaced, old candidates dropped, the new ones put in the first m-section.
 */
export function answerWithIce(previousAnswer, ice) {
  const out = [];
  let section = 0;
  const placeCandidates = () => {
    for (const c of ice.candidates) out.push(`a=${c}`);
    out.push('a=end-of-candidates');
  };
  for (const line of lines(previousAnswer)) {
    if (line.startsWith('m=')) {
      if (section === 1) placeCandidates();
      section += 1;
    }
    if (line.startsWith('a=candidate:') || line === 'a=end-of-candidates') continue;
    if (line.startsWith('a=ice-ufrag:')) out.push(`a=ice-ufrag:${ice.ufrag}`);
    else if (line.startsWith('a=ice-pwd:')) out.push(`a=ice-pwd:${ice.pwd}`);
    else out.push(line);
  }
  if (section === 1) placeCandidates();
  return `${out.join('\r\n')}\r\n`;
}
