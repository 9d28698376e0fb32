/**
 * Janus offers its viewers media sections named `0`, `1`, ... while the synthetic viewer's
 * sections are named `video` and `audio` (as a WHEP offer would name them). These pure rewrites
 * rename the offer's sections to the viewer's names and the answer's back, so each side reads
 * descriptions in its own names. The `sdes:mid` header extension is left out of the offer so
 * packets are routed by SSRC and never carry Janus's names.
 */

const MID_EXTENSION = 'urn:ietf:params:rtp-hdrext:sdes:mid';

function lines(sdp: string): string[] {
  return sdp.split(/\r?\n/).filter((l, i, all) => l !== '' || i < all.length - 1);
}

/** The mid of each media section, by kind (the first video and audio sections). */
export function midsByKind(sdp: string): { video?: string; audio?: string } {
  const out: { video?: string; audio?: string } = {};
  let kind: string | undefined;
  for (const line of lines(sdp)) {
    if (line.startsWith('m=')) kind = line.slice(2).split(' ')[0];
    else if (line.startsWith('a=mid:') && (kind === 'video' || kind === 'audio') && !out[kind])
      out[kind] = line.slice(6).trim();
  }
  return out;
}

/** Renames media sections (`a=mid:` and the BUNDLE group) with `names` (old -> new). */
export function renameMids(sdp: string, names: Record<string, string>): string {
  const rename = (mid: string) => names[mid] ?? mid;
  return lines(sdp)
    .map((line) => {
      if (line.startsWith('a=mid:')) return `a=mid:${rename(line.slice(6).trim())}`;
      if (line.startsWith('a=group:')) {
        const [head, ...mids] = line.split(' ');
        return [head, ...mids.map(rename)].join(' ');
      }
      return line;
    })
    .join('\r\n')
    .concat('\r\n');
}

/** Janus's viewer offer in the viewer's names (`video`, `audio`), without the mid extension. */
export function offerForViewer(janusOffer: string): { sdp: string; names: Record<string, string> } {
  const mids = midsByKind(janusOffer);
  const names: Record<string, string> = {};
  if (mids.video !== undefined) names[mids.video] = 'video';
  if (mids.audio !== undefined) names[mids.audio] = 'audio';
  const renamed = renameMids(janusOffer, names);
  const sdp = lines(renamed)
    .filter((l) => !(l.startsWith('a=extmap:') && l.includes(MID_EXTENSION)))
    .join('\r\n')
    .concat('\r\n');
  return { sdp, names };
}

/** The viewer's answer back in Janus's names. */
export function answerForJanus(viewerAnswer: string, names: Record<string, string>): string {
  const back: Record<string, string> = {};
  for (const [janus, viewer] of Object.entries(names)) back[viewer] = janus;
  return renameMids(viewerAnswer, back);
}
