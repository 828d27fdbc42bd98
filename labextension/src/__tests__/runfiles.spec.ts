import {
  contentKind,
  drivePath,
  filesToTree,
  folderEntries,
  formatSize,
  splitLocalPath,
  unsafeRel
} from '../runfiles';

const FILES = [
  { path: 'output.ipynb', size: 2048, modified: '2026-01-01T00:00:00Z' },
  { path: 'provenance.json', size: 300, modified: '2026-01-01T00:00:00Z' },
  { path: 'outputs/plots/a.png', size: 10, modified: '2026-01-01T00:00:00Z' },
  { path: 'outputs/model.pkl', size: 5, modified: '2026-01-01T00:00:00Z' }
];

describe('filesToTree', () => {
  it('nests folders, folders first, each level by name', () => {
    const tree = filesToTree(FILES);
    expect(tree.map(n => n.name)).toEqual(['outputs', 'output.ipynb', 'provenance.json']);
    const outputs = tree[0];
    expect(outputs.path).toBe('outputs');
    expect(outputs.children!.map(n => n.name)).toEqual(['plots', 'model.pkl']);
    expect(outputs.children![0].children![0]).toEqual({
      name: 'a.png',
      path: 'outputs/plots/a.png',
      size: 10,
      modified: '2026-01-01T00:00:00Z'
    });
  });

  it('lists one folder, null for one that is not there', () => {
    expect(folderEntries(FILES, 'outputs/plots')!.map(n => n.name)).toEqual(['a.png']);
    expect(folderEntries(FILES, '')!.length).toBe(3);
    expect(folderEntries(FILES, 'nope')).toBeNull();
  });
});

describe('drive paths', () => {
  it('puts the workload first and splits it off again', () => {
    expect(drivePath('nb-1', 'output.ipynb')).toBe('WorkbenchRuns:nb-1/output.ipynb');
    expect(splitLocalPath('nb-1/outputs/a.png')).toEqual({
      workload: 'nb-1',
      rel: 'outputs/a.png'
    });
    expect(splitLocalPath('nb-1')).toEqual({ workload: 'nb-1', rel: '' });
  });

  it('refuses paths that would leave the run directory', () => {
    expect(unsafeRel('../etc/passwd')).toBe(true);
    expect(unsafeRel('a/../../b')).toBe(true);
    expect(unsafeRel('a\0b')).toBe(true);
    expect(unsafeRel('outputs/a..b.txt')).toBe(false);
  });

  it('opens notebooks as notebooks, text as text, the rest as bytes', () => {
    expect(contentKind('output.ipynb')).toBe('notebook');
    expect(contentKind('provenance.json')).toBe('text');
    expect(contentKind('model.pkl')).toBe('binary');
    expect(formatSize(300)).toBe('300 B');
    expect(formatSize(2048)).toBe('2.0 KiB');
  });
});
