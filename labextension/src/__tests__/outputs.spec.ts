/**
 * The read-only `WorkbenchRuns` drive, against a stand-in for the files endpoint.
 */
import type { WorkbenchAPI } from '../api';
import { RunsDrive } from '../outputs';
import type { IRunFiles } from '../runfiles';

const LISTING: IRunFiles = {
  run_dir: '/home/wb/runs/nb-1',
  notebook: 'output.ipynb',
  files: [
    { path: 'output.ipynb', size: 120, modified: '2026-01-01T00:00:00Z' },
    { path: 'provenance.json', size: 20, modified: '2026-01-01T00:00:00Z' },
    { path: 'outputs/model.bin', size: 3, modified: '2026-01-01T00:00:00Z' }
  ]
};
const NOTEBOOK = { cells: [], metadata: {}, nbformat: 4, nbformat_minor: 5 };

function fakeAPI(asked: string[]): WorkbenchAPI {
  const bodies: { [rel: string]: BodyInit } = {
    'output.ipynb': JSON.stringify(NOTEBOOK),
    'provenance.json': '{"python": "3.11"}',
    'outputs/model.bin': new Uint8Array([0, 1, 255])
  };
  return {
    settings: { baseUrl: 'http://lab/' },
    files: async (name: string) => {
      asked.push(`files ${name}`);
      return LISTING;
    },
    fileContent: async (name: string, rel: string) => {
      asked.push(`content ${name} ${rel}`);
      return new Response(bodies[rel]);
    },
    fileURL: (name: string, rel: string) =>
      `http://lab/workbench/api/workloads/${name}/files/${rel}`
  } as unknown as WorkbenchAPI;
}

describe('RunsDrive', () => {
  it('serves the executed notebook read-only, as a notebook', async () => {
    const asked: string[] = [];
    const drive = new RunsDrive(fakeAPI(asked));
    const model = await drive.get('nb-1/output.ipynb', { content: true });
    expect(model).toMatchObject({
      name: 'output.ipynb',
      path: 'nb-1/output.ipynb',
      type: 'notebook',
      format: 'json',
      writable: false,
      content: NOTEBOOK
    });
    expect(asked).toEqual(['files nb-1', 'content nb-1 output.ipynb']);
  });

  it('answers a metadata request without fetching the file', async () => {
    const asked: string[] = [];
    const model = await new RunsDrive(fakeAPI(asked)).get('nb-1/output.ipynb', { content: false });
    expect(model.content).toBeNull();
    expect(asked).toEqual(['files nb-1']);
  });

  it('serves text as text and other bytes as base64', async () => {
    const drive = new RunsDrive(fakeAPI([]));
    const text = await drive.get('nb-1/provenance.json');
    expect(text).toMatchObject({ type: 'file', format: 'text', content: '{"python": "3.11"}' });
    const binary = await drive.get('nb-1/outputs/model.bin');
    expect(binary).toMatchObject({ type: 'file', format: 'base64', content: 'AAH/' });
  });

  it('lists a folder of the run directory', async () => {
    const drive = new RunsDrive(fakeAPI([]));
    const folder = await drive.get('nb-1');
    expect(folder.type).toBe('directory');
    expect((folder.content as { path: string; type: string }[]).map(e => [e.path, e.type])).toEqual(
      [
        ['nb-1/outputs', 'directory'],
        ['nb-1/output.ipynb', 'notebook'],
        ['nb-1/provenance.json', 'file']
      ]
    );
    await expect(drive.get('nb-1/nope')).rejects.toThrow(
      /no such file in the run directory of nb-1/
    );
  });

  it('refuses paths out of the run directory and every write', async () => {
    const asked: string[] = [];
    const drive = new RunsDrive(fakeAPI(asked));
    await expect(drive.get('nb-1/../other/x')).rejects.toThrow(/leaves the run directory/);
    expect(asked).toEqual([]);
    await expect(drive.save('nb-1/output.ipynb')).rejects.toThrow(/read-only: saving refused/);
    await expect(drive.delete('nb-1/output.ipynb')).rejects.toThrow(/read-only/);
    await expect(drive.rename('nb-1/output.ipynb')).rejects.toThrow(/read-only/);
    await expect(drive.newUntitled({ path: 'nb-1' })).rejects.toThrow(/read-only/);
    await expect(drive.createCheckpoint('nb-1/output.ipynb')).rejects.toThrow(/read-only/);
    await expect(drive.listCheckpoints()).resolves.toEqual([]);
    await expect(drive.getDownloadUrl('nb-1/provenance.json')).resolves.toBe(
      'http://lab/workbench/api/workloads/nb-1/files/provenance.json'
    );
    await expect(drive.getDownloadUrl('nb-1/../../etc/passwd')).rejects.toThrow(/not a file/);
  });
});
