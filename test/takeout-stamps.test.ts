// The JSON exports' US stamps (MM/DD/YY HH:MM:SS, 20YY) against luxon reading the same text: every
// day of 2000–2099 and impossible dates (31 April, 29 February of a common year, hour 24).
import test from 'ava';
import { DateTime } from 'luxon';
import { parseUsStamp } from '../transforms/takeout.js';

const pad2 = (n: number): string => String(n).padStart(2, '0');

test('every calendar day of 20YY and every impossible one read as luxon reads them', (t) => {
  let checked = 0;
  for (let y = 0; y < 100; y++) {
    for (let mo = 1; mo <= 12; mo++) {
      for (let d = 1; d <= 31; d++) {
        const text = `${pad2(mo)}/${pad2(d)}/${pad2(y)} ${pad2((d * 7) % 24)}:${pad2((mo * 13) % 60)}:${pad2(y % 60)}`;
        // The year as 20YY (Fitbit's), spelled out: luxon's own pivot reads 61–99 as 19YY.
        const ref = DateTime.fromFormat(text.replace(/\/(\d\d) /, '/20$1 '), 'MM/dd/yyyy HH:mm:ss', { zone: 'utc' });
        const got = parseUsStamp(text);
        if (ref.isValid) t.is(got, ref.toMillis(), text);
        else t.true(Number.isNaN(got), text);
        checked++;
      }
    }
  }
  t.is(checked, 100 * 12 * 31);
});

test('malformed stamps are NaN', (t) => {
  for (const text of ['2016-04-12 07:00:00', '04/12/16 7:00:00', '04/12/16 24:00:00', '04/12/16 07:60:00', '13/01/16 00:00:00', '00/01/16 00:00:00', '04/00/16 00:00:00', '04/12/2016 07:00', '04/12/16T07:00:00', '']) {
    t.true(Number.isNaN(parseUsStamp(text)), text);
  }
  t.is(parseUsStamp('02/29/16 23:59:59'), Date.UTC(2016, 1, 29, 23, 59, 59));
  t.true(Number.isNaN(parseUsStamp('02/29/23 00:00:00')));
});
